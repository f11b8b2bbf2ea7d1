# narayanad in a container: built with cgo (SQLite) on the same Debian release as the
# image it runs in, run as an unprivileged user, its database on a volume.
#   docker build -t narayanad .
#   docker run --rm -v narayana:/var/lib/narayana narayanad init --admin-user admin --admin-password '…' --api-key '…'
#   docker run -d -p 8080:8080 -v narayana:/var/lib/narayana narayanad
FROM golang:1.26-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/narayanad ./cmd/narayanad

FROM debian:trixie-slim
# ca-certificates for HTTPS (exchange rates, mail); espeak-ng is what createTTS runs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates espeak-ng \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/narayana --create-home --shell /usr/sbin/nologin narayana
COPY --from=build /out/narayanad /usr/bin/narayanad
COPY contrib/narayana.conf /etc/narayana/narayana.conf
ENV NARAYANA_DB=sqlite:/var/lib/narayana/narayana.db \
    NARAYANA_LISTEN=0.0.0.0:8080
USER narayana:narayana
WORKDIR /var/lib/narayana
VOLUME ["/var/lib/narayana"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/bin/narayanad", "healthcheck"]
ENTRYPOINT ["/usr/bin/narayanad"]
CMD ["serve", "--config", "/etc/narayana/narayana.conf"]
