module github.com/sluicegw/sluice/filters/builtins

go 1.26.8

require (
	github.com/sluicegw/sluice v0.0.0
	github.com/sluicegw/sluice/filters/header-policy v0.0.0
	github.com/sluicegw/sluice/filters/mtls-identity v0.0.0
	github.com/sluicegw/sluice/filters/ratelimit v0.0.0
	github.com/sluicegw/sluice/sdk v0.0.0
)

replace (
	github.com/sluicegw/sluice => ../..
	github.com/sluicegw/sluice/filters/header-policy => ../header-policy
	github.com/sluicegw/sluice/filters/mtls-identity => ../mtls-identity
	github.com/sluicegw/sluice/filters/ratelimit => ../ratelimit
	github.com/sluicegw/sluice/sdk => ../../sdk
)
