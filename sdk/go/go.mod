module github.com/tracekit/tracekit/sdk/go

go 1.26.8
