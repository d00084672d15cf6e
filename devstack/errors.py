class StackError(Exception):
    """Something the operator must fix; the message says what is wrong and what to do."""
