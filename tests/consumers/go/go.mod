module example.com/app

go 1.23

require github.com/backlite/backlite/bindings/go v0.0.0

replace github.com/backlite/backlite/bindings/go => ../backlite/bindings/go
