package config

// Kube configures cluster mode. (Filled in by the cluster-mode work.)
type Kube struct{}
