module gomisuse

go 1.24

require github.com/sluicegw/sluice/sdk v0.0.0

replace github.com/sluicegw/sluice/sdk => ../../../../sdk
