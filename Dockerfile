# Distillery in a container: CPU torch, the pinned requirements, the app on port 7860 with its own worker.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 DISTILLERY_DATA_DIR=/data \
    HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.txt
COPY . .
EXPOSE 7860
VOLUME ["/data"]
CMD ["python", "app.py"]
