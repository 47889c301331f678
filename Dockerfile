# imgtrace in a container, for the Kubernetes Jobs of docs/deploy/kubernetes/.
# The install step is the README's, so the image runs what users and tests run.
FROM python:3.11-slim
WORKDIR /opt/imgtrace
COPY . .
RUN python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'
ENV PATH=/opt/imgtrace/.venv/bin:$PATH
ENTRYPOINT ["imgtrace"]
CMD ["--help"]
