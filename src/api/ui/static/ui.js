// The few behaviours htmx does not cover: tabs, picking selectors, copying a secret.
(function () {
  "use strict";

  function pickedList(field) {
    return document.querySelector('ul.picked[data-field="' + field + '"]');
  }

  function updateCount(field) {
    var list = pickedList(field);
    var badge = document.querySelector('[data-count-for="' + field + '"]');
    if (list && badge) badge.textContent = list.children.length;
  }

  function pick(field, name) {
    var list = pickedList(field);
    if (!list) return;
    var present = Array.prototype.some.call(list.querySelectorAll("input"), function (i) {
      return i.value === name;
    });
    if (present) return;
    var item = document.createElement("li");
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = field;
    input.value = name;
    var label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.setAttribute("data-remove", "");
    remove.setAttribute("aria-label", "Remove " + name);
    remove.textContent = "Remove";
    item.append(input, label, " ", remove);
    list.appendChild(item);
    updateCount(field);
  }

  function selectTab(tab) {
    var tablist = tab.closest('[role="tablist"]');
    tablist.querySelectorAll('[role="tab"]').forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    });
    tab.focus();
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("button");
    if (!target) return;
    if (target.hasAttribute("data-pick")) {
      pick(target.getAttribute("data-field"), target.getAttribute("data-name"));
    } else if (target.hasAttribute("data-remove")) {
      var list = target.closest("ul.picked");
      target.closest("li").remove();
      updateCount(list.getAttribute("data-field"));
    } else if (target.getAttribute("role") === "tab") {
      selectTab(target);
    } else if (target.hasAttribute("data-copy")) {
      var source = document.getElementById(target.getAttribute("data-copy"));
      source.select();
      navigator.clipboard.writeText(source.value).then(function () {
        target.textContent = "Copied";
      }, function () {
        target.textContent = "Select and copy by hand";
      });
    }
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    // Enter in a catalog search adds the first match instead of sending the form.
    if (event.key === "Enter" && target.hasAttribute("data-picker-search")) {
      event.preventDefault();
      var results = document.getElementById(target.getAttribute("hx-target").slice(1));
      var first = results && results.querySelector("[data-pick]");
      if (first) first.click();
      return;
    }
    if (target.getAttribute("role") === "tab" &&
        (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      var tabs = Array.prototype.slice.call(
        target.closest('[role="tablist"]').querySelectorAll('[role="tab"]'));
      var step = event.key === "ArrowRight" ? 1 : tabs.length - 1;
      selectTab(tabs[(tabs.indexOf(target) + step) % tabs.length]);
      event.preventDefault();
    }
  });
})();
