module github.com/backlite/backlite/bindings/go

go 1.23
