"""``stack up`` on a running stack disturbs nothing: no Postgres backend is killed (the
portable vector.so is only replaced when it changed, atomically), searches keep working."""
import pytest

from tests.helpers import postgres_signal_lines

from .conftest import SearchLoad

pytestmark = pytest.mark.stack


def test_stack_up_twice_under_search_load(stack, searchable):
    client, collection_id = searchable
    library = stack.primary.root / "ext" / "lib" / "vector.so"
    inode = library.stat().st_ino
    with SearchLoad(client, collection_id=collection_id) as load:
        stack.up(echo=lambda line: None)
        stack.up(echo=lambda line: None)
    assert library.stat().st_ino == inode  # unchanged content: not rewritten
    assert set(load.statuses()) == {200}, (load.statuses(), load.bodies)
    assert postgres_signal_lines(stack) == []
