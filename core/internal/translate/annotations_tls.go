package translate

// tlsAnnotations are the annotations for per-host TLS and mTLS settings that translate honours.
var tlsAnnotations = map[string]bool{}
