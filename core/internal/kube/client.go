package kube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientOptions say how to reach the API server.
type ClientOptions struct {
	// Kubeconfig is a kubeconfig file; its current context is used.
	Kubeconfig string
	// InCluster uses the service account of the pod the gateway runs in.
	InCluster bool
	// QPS and Burst limit request rates (watches count once each). Zero
	// means client-go's defaults.
	QPS   float32
	Burst int
	// UserAgent names the gateway in the API server's logs.
	UserAgent string
}

// NewClient returns a clientset for the API server that opts name. It reads
// the kubeconfig (or the in-cluster service account files) but does not
// contact the server.
func NewClient(opts ClientOptions) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	switch {
	case opts.Kubeconfig != "" && opts.InCluster:
		return nil, errors.New("kube client: both a kubeconfig and in-cluster config requested; choose one")
	case opts.Kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", opts.Kubeconfig, err)
		}
	case opts.InCluster:
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
	default:
		return nil, errors.New("kube client: no kubeconfig and not in-cluster")
	}
	cfg.QPS = opts.QPS
	cfg.Burst = opts.Burst
	if opts.UserAgent != "" {
		cfg.UserAgent = opts.UserAgent
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client for %s: %w", cfg.Host, err)
	}
	return cs, nil
}
