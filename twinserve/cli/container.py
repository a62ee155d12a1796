"""Run a service as a compose container's main process, on all the container's interfaces (docker-compose.yml).

    torchserve [colour]   a colour's TorchServe, each API bound to its network's address (default: $TWINSERVE_COLOUR)
    broker                Tansu, in memory, as natively
    exporter | alert-receiver | drift-consumer   as `twinserve serve`, listening on all interfaces
    archives              one-shot: build the initial archives if missing, set up the state (as `up` does first)

The compose network is the boundary: only what docker-compose.yml publishes leaves it.
"""

SERVICES = ("torchserve", "broker", "exporter", "alert-receiver", "drift-consumer", "archives")


def arguments(parser) -> None:
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("colour", nargs="?", help="torchserve only (default: $TWINSERVE_COLOUR)")


def run(args) -> None:
    from twinserve.cli.serve import run_service
    from twinserve.compose import services
    from twinserve.errors import UsageError
    from twinserve.settings import load_stack

    if args.colour and args.service != "torchserve":
        raise UsageError(f"{args.service} takes no colour")
    stack = load_stack(args.stack)
    if args.service == "archives":
        print("\n".join(services.prepare(stack)))
    elif args.service == "torchserve":
        services.run_torchserve(stack, services.colour_of(stack, args.colour))
    elif args.service == "broker":
        services.run_broker(stack, services.LISTEN)
    else:
        run_service(stack, args.service, services.LISTEN, native=False)
