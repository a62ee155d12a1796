"""twinserve: blue/green TorchServe behind Nginx, as one package laid out by what it does.

Bottom to top; a package imports only those below it (`make lint` checks this
with import-linter, contracts in pyproject.toml):

    errors, settings   the error hierarchy and the stack description (config/stack.yaml);
      routes             beside settings: a model's route through Nginx, in one place
    store              what twinserve keeps on disk: production colours, deployments, the lock, archives
    drift              production inputs from Kafka compared with the training data
    runtime            the native processes: rendering their configs, starting, supervising, stopping
    release            deploy to staging, smoke-test, promote, roll back
    observe            the control plane's exporter and the alert receiver
    compose            the same stack in containers: rendered configs, images, container entry points
    kube               the same stack on Kubernetes, on paper: manifests rendered from the stack, validated offline
    pipeline           a model version from training to production, with gates
    cli                `twinserve <verb>`: every user command, one module per verb (the top: it also runs the tools)

tools/ (benchmarks, wrk, the swap check) uses the product and is never imported by it; only cli,
above both, dispatches to it (`twinserve bench`, `twinserve swapcheck`).
handlers/ (TorchServe's side) and archiver/ sit outside this package and never import it.
Templates, Lua, rules, handlers and models are files of the project directory
($TWINSERVE_HOME, else the current directory: settings.project_dir), never read from beside this package.
"""
