package translate

// filterAnnotations are the annotations for the filter chain (sluice.io/filters) that translate honours.
var filterAnnotations = map[string]bool{}
