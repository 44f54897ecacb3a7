package config

// TLS configures certificates and client authentication. (Filled in by the
// TLS work: issuers, storage, on-demand, mTLS defaults.)
type TLS struct{}
