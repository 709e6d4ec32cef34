FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .

EXPOSE 4000
# Inside the container the API listens on every interface of the container;
# publish the port only where it should be reached.
CMD ["accessledger", "serve", "--host", "0.0.0.0", "--port", "4000"]
