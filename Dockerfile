# tracekit: one static binary for every role (server, auth, manager, dev), on a distroless base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
# The server shares the redaction and condition packages of the Go agent SDK (a replace to ./sdk/go).
COPY sdk/go/go.mod sdk/go/go.sum sdk/go/
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY server/ server/
COPY sdk/go/ sdk/go/
# CGO off: SQLite is the pure-Go modernc driver; Dex's cgo SQLite storage is not used in images.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tracekit ./cmd/tracekit

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tracekit /tracekit
USER 65532:65532
ENTRYPOINT ["/tracekit"]
