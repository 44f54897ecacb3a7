module github.com/sluicegw/sluice/filters/mtls-identity

go 1.26.8

require (
	github.com/sluicegw/sluice v0.0.0
	github.com/sluicegw/sluice/sdk v0.0.0
)

replace (
	github.com/sluicegw/sluice => ../..
	github.com/sluicegw/sluice/sdk => ../../sdk
)
