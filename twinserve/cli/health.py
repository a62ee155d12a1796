"""A compose healthcheck: exit 0 if the service answers from inside its container, 1 if not (nothing printed).

Services (docker-compose.yml's healthchecks):

    stack                     the stack description loads (one-shot containers)
    torchserve [colour]       /ping with the colour's inference key (default: $TWINSERVE_COLOUR)
    broker | exporter | alert-receiver | drift-consumer
"""

SERVICES = ("stack", "torchserve", "broker", "exporter", "alert-receiver", "drift-consumer")


def arguments(parser) -> None:
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("colour", nargs="?", help="torchserve only (default: $TWINSERVE_COLOUR)")


def run(args) -> int:
    from twinserve.compose import services
    from twinserve.errors import EXIT_FAILED
    from twinserve.settings import load_stack

    return 0 if services.health(load_stack(args.stack), args.service, args.colour) else EXIT_FAILED
