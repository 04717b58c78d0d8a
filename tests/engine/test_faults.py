"""COTRAIN_FAULT parsing: every kind, and one line naming a malformed value."""
from __future__ import annotations

import pytest

from cotrain.engine.faults import Fault, parse


def test_each_kind_parses_with_its_options():
    nan, kill, pause = parse("nan:bsd_p_cnn:epoch=1:step=2; kill:epoch=2:step=1:once=/tmp/m; "
                             "pause:epoch=2:step=1:seconds=7.5:when=alpha=2.0")
    assert nan == Fault("nan", 1, 2, term="bsd_p_cnn")
    assert kill == Fault("kill", 2, 1, once="/tmp/m")
    assert pause == Fault("pause", 2, 1, when=("alpha", "2.0"), seconds=7.5)


@pytest.mark.parametrize("text, says", [("sleep:epoch=1:step=1", "unknown fault kind"),
                                        ("pause:epoch=1:step=1", "says how long"),
                                        ("nan:epoch=1:step=1", "names a loss term"),
                                        ("kill:epoch=1", "expected KIND")])
def test_malformed_value_is_named(text, says):
    with pytest.raises(ValueError, match=says) as error:
        parse(text)
    assert repr(text) in str(error.value)
