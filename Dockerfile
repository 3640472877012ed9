# Distillery in a container: CPU torch, the pinned requirements, and either the studio (default) or the
# embeddings service alone. Build and run: README.md, "Deploy".
#   docker build -t distillery .                                    # studio on $PORT (7860)
#   docker build --build-arg DISTILLERY_MODE=service -t distillery-service .
FROM python:3.11-slim

# studio: the Gradio studio with the service mounted beside it (app.py); service: `python -m serve` alone.
ARG DISTILLERY_MODE=studio

# HOME and the data folder belong to uid 1000, the user Hugging Face Docker Spaces run as.
ENV DISTILLERY_MODE=${DISTILLERY_MODE} \
    PORT=7860 \
    HOST=0.0.0.0 \
    HOME=/home/user \
    DISTILLERY_DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    GRADIO_ANALYTICS_ENABLED=False

RUN useradd --create-home --uid 1000 --shell /bin/bash user \
 && mkdir -p /data /app \
 && chown user:user /data /app

WORKDIR /app

# torch first, alone, from the CPU index (the pin in requirements.txt then keeps pip from resolving the
# multi-GB CUDA build), then every other pinned requirement; this layer is cached until they change.
COPY requirements.txt .
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements.txt

COPY --chown=user:user . .
USER 1000

VOLUME ["/data"]
EXPOSE 7860

# The service alone is healthy once a model is loaded (/health is 503 before). The studio is healthy
# once its page answers: its /health stays 503 until someone calls a model, which is not a fault.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; path = '/health' if os.environ.get('DISTILLERY_MODE') == 'service' else '/'; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '7860')}{path}\", timeout=4)"]

# exec'd by the script, so python is PID 1's only child and gets SIGTERM from `docker stop`.
CMD ["bash", "scripts/start.sh"]
