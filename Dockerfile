# Sluice gateway image: a static binary on a distroless base that runs as
# non-root (uid 65532). Build and publish (README.md, "Install in a
# cluster"):
#
#   docker build -t REGISTRY/sluice:TAG --build-arg VERSION=TAG .
#   docker push REGISTRY/sluice:TAG
#
# There is no Docker engine in this project's CI: this file is checked by
# review, not built by a test.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=$VERSION" \
      -o /out/sluice ./cmd/sluice

# static-debian12:nonroot has CA certificates, tzdata, /etc/passwd with
# the nonroot user, and no shell or package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sluice /usr/local/bin/sluice
USER 65532:65532
EXPOSE 8080 8443 9901
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run", "--in-cluster"]
