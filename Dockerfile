# The shoal image: control plane (`shoal server`), agent (`shoal agent`), the toolkit that runs inside
# execution pods (`python3 -m shoal.execution._toolkit`) and a static busybox at /usr/bin/busybox that
# the setup init container of every execution copies into the pod's shared /.shoal volume.
#
#   docker build -t ghcr.io/shoal-dev/shoal:latest .
#
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# busybox-static: a static binary that runs in any image the init program is copied into;
# git: the toolkit's clone; tini: signals reach shoal as PID 1's child.
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static git ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && /usr/bin/busybox --list >/dev/null
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --uid 1001 --gid 0 --create-home --home-dir /var/lib/shoal shoal \
 && chmod g+rwX /var/lib/shoal
ENV SHOAL_HOME=/var/lib/shoal \
    PYTHONUNBUFFERED=1
USER 1001
WORKDIR /var/lib/shoal
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "shoal"]
CMD ["--help"]
