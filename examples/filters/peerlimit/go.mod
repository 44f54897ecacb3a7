module example.com/filters/peerlimit

go 1.24

require github.com/sluicegw/sluice/sdk v0.0.0

// The SDK of this checkout. An external filter drops this line and
// requires a released version of github.com/sluicegw/sluice/sdk.
replace github.com/sluicegw/sluice/sdk => ../../../sdk
