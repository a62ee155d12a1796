"""What twinserve keeps on disk: the production colour, the deployments, the admin token, the lock (state),
and the versioned archives in model_store/ (archives). Imports settings and errors only."""
