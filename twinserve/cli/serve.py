"""Run one of the control plane's own services in the foreground (`twinserve up` starts them in the background).

    supervisor       restarts a process of the stack that died, rotates the logs
    exporter         the control plane's Prometheus metrics (monitoring.exporter_port)
    alert-receiver   records Alertmanager's notifications (monitoring.alert_receiver_port)
    drift-consumer   production inputs from the broker against the training data (drift.consumer_metrics_port)

Natively each listens on loopback only; `twinserve container <service>` runs the
same function in a compose container, on all its interfaces.
"""

LOOPBACK = "127.0.0.1"
SERVICES = ("supervisor", "exporter", "alert-receiver", "drift-consumer")


def arguments(parser) -> None:
    parser.add_argument("service", choices=SERVICES)


def run_service(stack, service: str, host: str, native: bool) -> None:
    """The one start-up of each service, native or in a container: only the bind address (and, for the exporter,
    whether there are native processes to report on) differs."""
    if service == "supervisor":
        from twinserve.runtime.supervisor import Supervisor

        Supervisor(stack).run()
    elif service == "exporter":
        from twinserve.observe import exporter

        exporter.run(stack, host, supervision=native)
    elif service == "alert-receiver":
        from twinserve.observe import alert_receiver

        alert_receiver.run(stack, host)
    elif service == "drift-consumer":
        from twinserve.drift import service as drift

        drift.run(stack, host)
    else:
        raise ValueError(f"no such service: {service}")  # the parsers' choices keep this from happening


def run(args) -> None:
    from twinserve.settings import load_stack

    run_service(load_stack(args.stack), args.service, LOOPBACK, native=True)
