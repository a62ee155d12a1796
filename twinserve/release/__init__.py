"""Changing what serves: deploy a version to staging, smoke-test it, promote or roll back.
Built on runtime's clients (TorchServe's management API, Nginx's switch) and store's state."""
