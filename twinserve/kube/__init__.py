"""The same stack on Kubernetes, on paper: manifests rendered from config/stack.kube.yaml (render) into
deploy/kubernetes/base/, checked offline with kubectl kustomize and kubernetes-validate (validate).
No API server runs here: nothing is applied (docs/kubernetes.md). Reuses compose's rendered Nginx config."""
