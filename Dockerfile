# BBB Explorer: the Streamlit app in one container, training on the CPU.
#
#   docker build -t bbb-explorer .
#   docker run --rm -p 8501:8501 bbb-explorer        # then open http://localhost:8501
#
# docs/hosting.md covers hosting for a class: one process, this image, several behind a proxy.

# Debian 12 (bookworm), the release the project's tests run on.
FROM python:3.11-slim-bookworm

# MALLOC_ARENA_MAX=2: glibc's malloc keeps two heaps for all the server's threads instead of up to
# eight per core, so the memory of a class's closed tabs goes back (docs/hosting.md).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_SERVER_HEADLESS=true \
    BBB_DATA_DIR=/data

# A C compiler lets large Bayesian layers train through the fused CPU kernels, built on first use
# into the app user's ~/.cache/bbb_explorer (docs/native.md). `--build-arg NATIVE=0` leaves it
# out: a smaller image, and every layer trains on the plain PyTorch path.
ARG NATIVE=1
RUN if [ "$NATIVE" = "1" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends gcc libc6-dev \
        && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app

# The README's install command. On PyPI, torch for Linux x86_64 is the CUDA build: there
# `torch==2.13.0` also pulls some twenty nvidia-* and cuda-* packages (several GB) that a CPU
# container never uses. So the same version's CPU build is installed first, from PyTorch's own
# index and for torch alone (the pin is read from requirements.txt, so it lives in one place);
# `pip install -r requirements.txt` then finds `torch==2.13.0` satisfied by 2.13.0+cpu and fetches
# everything else from PyPI.
COPY requirements.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu \
        "$(grep -E '^torch==' requirements.txt)" \
    && pip install -r requirements.txt

# The app only: the engine, the pages, their helpers, the project's Streamlit settings and the
# example CSVs. Owned by root, so the app's user can read but not change them.
COPY .streamlit/ .streamlit/
COPY app.py ./
COPY bbb_core/ bbb_core/
COPY ui/ ui/
COPY pages/ pages/
COPY examples/ examples/
RUN python -m compileall -q app.py bbb_core ui pages

# A user of its own: the app writes only to its home (the kernel cache) and to /data (MNIST and
# Fashion-MNIST, when the Images page fetches or finds them; mount a volume there to keep them).
RUN useradd --create-home --uid 10001 --user-group bbb \
    && mkdir -p /data \
    && chown bbb:bbb /data
USER bbb

EXPOSE 8501

# slim has no curl: Python asks Streamlit's health endpoint, which answers "ok" once the server
# takes browser connections (503 before).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).read() != b'ok')"]

CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0"]
