package translate

// nginxAnnotations are the annotations for the ingress-nginx compatible subset (nginx.ingress.kubernetes.io/) that translate honours.
var nginxAnnotations = map[string]bool{}
