FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --create-home bookings
USER bookings
EXPOSE 8000
CMD ["bookings", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--log-level", "warning"]
