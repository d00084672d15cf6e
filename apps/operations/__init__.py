"""Operations: health, the dev/test stack command, and (later) overload control."""
