"""Overload control: request classes, admission at the web tier, deadlines, the queue load
readings they rely on, and the runtime policy. See docs/overload.md."""
