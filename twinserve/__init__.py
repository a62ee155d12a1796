"""twinserve's control plane: stack launcher, deploy, swap, rollback."""
