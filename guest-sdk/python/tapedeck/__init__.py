"""The Tapedeck guest SDK for Python: write a strategy (or projector) as a class, export it
with one call, build it with `tapedeck build DIR` (componentize-py, no WASI: the module imports
nothing).

    import tapedeck
    from tapedeck import QUOTE, BUY, SELL

    class Mine(tapedeck.Strategy):
        CONFIG = {"qty": 1.0}                 # defaults; init's JSON overrides them

        def __init__(self, cfg):
            self.qty = cfg["qty"]

        def on_event(self, ev, ctx):
            if ev.kind == QUOTE:
                ctx.market(ev, BUY, self.qty)

    WitWorld = tapedeck.export_strategy(Mine)

State is the object's attributes: `snapshot()` writes them as JSON (see `tapedeck.state`), and
`restore` builds a new object from them without calling `__init__`. Inside the sandbox there
is no stdout, no clock, no files: `print` goes nowhere. Log with `ctx.log(...)` and
`ctx.metric(...)`: they are outputs, tagged with the event's seq, like orders.
"""

from . import state
from .codec import (  # noqa: F401  (the public names)
    BALANCE, BOOK_DELTA, BOOK_SNAPSHOT, BUY, CUSTOM, DEBUG, ERROR, FILL, FOK, FUNDING, GTC,
    GUARDRAIL_TRANSITION, INFO, IOC, LIMIT, MARKET, ORDER_ACKED, ORDER_CANCELLED,
    ORDER_REJECTED, ORDER_SUBMITTED, POSITION, POST_ONLY, QUOTE, RISK_DECISION, SELL, TRACE,
    TRADE, WARN, Balance, BookDelta, BookSnapshot, CodecError, Custom, Event, Fill, Funding,
    GuardrailTransition, OrderAcked, OrderCancelled, OrderRejected, OrderSubmitted,
    OutputWriter, Position, Quote, RiskDecision, Trade, events, pow10, to_mantissa)

#: Version of the host/guest contract this SDK speaks (the Rust SDK's `ABI_VERSION`).
ABI_VERSION = 2


class Strategy:
    """Base class of a strategy. Subclasses set `CONFIG` (the defaults), define
    `__init__(self, cfg)` (raise ValueError to refuse a config) and `on_event(self, ev, ctx)`."""

    CONFIG = {}

    def __init__(self, cfg):
        pass

    def on_event(self, ev, ctx):
        raise NotImplementedError("a strategy defines on_event(self, ev, ctx)")

    def snapshot(self):
        """The whole state as bytes (JSON of the attributes)."""
        return state.dumps(vars(self))

    @classmethod
    def restore(cls, data):
        """A new instance from `snapshot()` bytes, continuing exactly where it was taken."""
        obj = cls.__new__(cls)
        vars(obj).update(state.loads(data))
        return obj


class Projector(Strategy):
    """Base class of a projector: like a strategy, and its `state()` (a JSON value, canonical
    when serialized) is what is diffed against stored snapshots. Its context emits nothing."""

    def state(self):
        return vars(self)


class Instruments:
    """The stream's instrument table: id -> symbol."""

    __slots__ = ("by_id",)

    def __init__(self, pairs=()):
        self.by_id = dict(pairs)

    def symbol(self, id):
        return self.by_id.get(id)

    def name(self, id):
        """The symbol of `id`, or the id in decimal when the table has none."""
        s = self.by_id.get(id)
        return s if s is not None else str(id)


class Ctx:
    """Handed to `on_event`: every output it records carries the seq of the event being
    handled. Client order ids are `seq << 8 | n` for the n-th order of the event."""

    __slots__ = ("_out", "instruments", "cause_seq", "_orders")

    def __init__(self, out, instruments):
        self._out = out
        self.instruments = instruments
        self.cause_seq = 0
        self._orders = 0

    def symbol(self, id):
        return self.instruments.symbol(id)

    def name(self, id):
        return self.instruments.name(id)

    def order(self, instrument, side, order_type, tif, price, qty, px_scale, qty_scale):
        """An order exactly as given (mantissas at their scales); returns its client order id."""
        coid = ((self.cause_seq << 8) | (self._orders & 0xFF)) & 0xFFFFFFFFFFFFFFFF
        self._orders += 1
        self._out.new_order(self.cause_seq, instrument, coid, side, order_type, tif, px_scale,
                            qty_scale, price, qty)
        return coid

    def market(self, ev, side, qty):
        """A market order (IOC) for `qty`, converted at the event's quantity scale."""
        return self.order(ev.instrument, side, MARKET, IOC, 0, to_mantissa(qty, ev.qty_scale),
                          ev.px_scale, ev.qty_scale)

    def limit(self, ev, side, price, qty):
        """A good-till-cancelled limit order at the event's scales."""
        return self.order(ev.instrument, side, LIMIT, GTC, to_mantissa(price, ev.px_scale),
                          to_mantissa(qty, ev.qty_scale), ev.px_scale, ev.qty_scale)

    def cancel(self, instrument, client_order_id):
        self._out.cancel(self.cause_seq, instrument, client_order_id)

    def log(self, level, message):
        """A log line (level TRACE..ERROR): an output record, not stdout."""
        self._out.log(self.cause_seq, level, message)

    def metric(self, name, value):
        self._out.metric(self.cause_seq, name, value)


class ProjectorCtx:
    """Handed to a projector's `on_event`: it emits nothing (the host keeps no projector
    output); what a projector computes goes in its state."""

    __slots__ = ("instruments", "cause_seq")

    def __init__(self, instruments):
        self.instruments = instruments
        self.cause_seq = 0

    def symbol(self, id):
        return self.instruments.symbol(id)

    def name(self, id):
        return self.instruments.name(id)


class StrategyDriver:
    """Runs a strategy over packed batches: what the export glue wraps, and what native tests
    call (the same code path from batch bytes to output bytes)."""

    def __init__(self, guest):
        self.guest = guest
        self.out = OutputWriter()
        self.ctx = Ctx(self.out, Instruments())

    @classmethod
    def init(cls, guest_type, config):
        return cls(guest_type(state.parse_config(config, guest_type.CONFIG)))

    def set_instruments(self, pairs):
        self.ctx.instruments = Instruments(pairs)

    def on_events(self, batch):
        ctx, on_event = self.ctx, self.guest.on_event
        for ev in events(batch):
            ctx.cause_seq = ev.seq
            ctx._orders = 0
            on_event(ev, ctx)
        return self.out.finish()

    def snapshot(self):
        return self.guest.snapshot()


class ProjectorDriver(StrategyDriver):
    def __init__(self, guest):
        self.guest = guest
        self.out = OutputWriter()
        self.ctx = ProjectorCtx(Instruments())

    def on_events(self, batch):
        ctx, on_event = self.ctx, self.guest.on_event
        for ev in events(batch):
            ctx.cause_seq = ev.seq
            on_event(ev, ctx)
        return self.out.finish()

    def state(self):
        return state.canonical(self.guest.state())


def _metadata():
    """Name and version: from the `tapedeck_build` module `tapedeck build` writes (from
    pyproject.toml), else placeholders."""
    try:
        import tapedeck_build
        return tapedeck_build.NAME, tapedeck_build.VERSION
    except ImportError:
        return "python-guest", "0.0.0"


def _export(guest_type, driver_type, projector):
    # These modules exist only while componentize-py builds the component; natively (tests
    # under CPython) there is nothing to export, as the Rust macro only type-checks natively.
    try:
        import wit_world
        from componentize_py_types import Err
    except ImportError:
        return None

    name, version = _metadata()
    # componentize-py makes a new world object for every call: the state lives here.
    slot = []

    def driver():
        if not slot:
            raise RuntimeError("tapedeck: the host called the module before `init`")
        return slot[0]

    def put(d):
        slot[:] = [d]

    class WitWorld(wit_world.WitWorld):
        def init(self, config):
            try:
                put(driver_type.init(guest_type, config))
            except ValueError as e:
                raise Err(str(e))

        def metadata(self):
            return wit_world.ModuleInfo(name=name, version=version, abi_version=ABI_VERSION)

        def set_instruments(self, table):
            driver().set_instruments((i.id, i.symbol) for i in table)

        def on_events(self, batch):
            return driver().on_events(batch)

        def snapshot(self):
            return driver().snapshot()

        def restore(self, data):
            try:
                put(driver_type(guest_type.restore(data)))
            except ValueError as e:
                raise Err(f"snapshot does not restore: {e}")

        if projector:
            def state(self):
                return driver().state()

    return WitWorld


def export_strategy(guest_type):
    """The `WitWorld` class componentize-py exports, for a `Strategy` subclass:
    `WitWorld = tapedeck.export_strategy(Mine)` at module level."""
    if not (isinstance(guest_type, type) and issubclass(guest_type, Strategy)) or issubclass(
            guest_type, Projector):
        raise TypeError("export_strategy needs a subclass of tapedeck.Strategy")
    return _export(guest_type, StrategyDriver, False)


def export_projector(guest_type):
    """The `WitWorld` class for a `Projector` subclass."""
    if not (isinstance(guest_type, type) and issubclass(guest_type, Projector)):
        raise TypeError("export_projector needs a subclass of tapedeck.Projector")
    return _export(guest_type, ProjectorDriver, True)
