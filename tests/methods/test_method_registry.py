"""The method registry: declarations without torch, implementations imported on use, one declaration per option."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from cotrain.losses import bsd
from cotrain.methods import METHODS, NoOptions, declare_method, get_method, options_for, register_method, registry
from cotrain.methods import ours as ours_declaration
from cotrain.methods.base import Method
from cotrain.methods.ours.method import Ours
from cotrain.options import option, positive


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A copy of the registry that the test may add to (the real one is left as it was)."""
    scratch = dict(METHODS)
    monkeypatch.setattr(registry, "METHODS", scratch)
    return scratch


def test_built_ins_have_table_labels():
    assert {name: entry.display_name for name, entry in METHODS.items()}.items() >= {
        "dml": "DML", "ifvd": "IFVD", "kdcl": "KDCL", "offline_kd": "Offline KD", "ours": "Ours", "vanilla": "Vanilla"
    }.items()  # a plugin may add more


def test_get_method_returns_the_implementation():
    assert get_method("ours") is Ours


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_implementation_matches_its_declaration(name):
    cls = get_method(name)
    assert issubclass(cls, Method) and cls.name == name and cls.Options is METHODS[name].Options


def test_unknown_method_fails_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=f"unknown method 'magic'; allowed: {', '.join(sorted(METHODS))}$"):
        get_method("magic")
    with pytest.raises(ValueError, match="allowed: dml"):
        options_for("magic", {})


def test_options_for_takes_the_methods_own_keys():
    assert options_for("kdcl", {"kdcl_mode": "naive", "alpha": 5.0}) == METHODS["kdcl"].Options(kdcl_mode="naive")


def test_bsd_norms_declared_torch_free_agree_with_the_losses():
    assert ours_declaration.BSD_NORMS == bsd.BSD_NORMS


def test_bsd_kls_declared_torch_free_agree_with_the_losses():
    assert ours_declaration.BSD_KLS == bsd.BSD_KLS


def test_an_implementation_unlike_its_declaration_fails(scratch_registry):
    declare_method("mislabelled", "cotrain.methods.dml.method:DML")
    with pytest.raises(TypeError, match="has name 'dml'"):
        get_method("mislabelled")


def test_a_conflicting_option_declaration_fails(scratch_registry):
    @dataclass(frozen=True)
    class HotOptions(NoOptions):  # its own "temperature", not TemperatureOption's
        temperature: float = option(4.0, "KD temperature T (loss × T²)", positive)

    with pytest.raises(TypeError, match="option 'temperature' of method 'hot' differs from method"):
        declare_method("hot", "no.such.module:Hot", HotOptions)
    assert "hot" not in scratch_registry


def test_register_method_declares_a_class_with_its_label(scratch_registry):
    @register_method
    class Shown(Method):
        name = "shown"
        display_name = "Shown KD"

    @register_method
    class Plain(Method):
        name = "plain"

    assert get_method("shown") is Shown and scratch_registry["shown"].display_name == "Shown KD"
    assert scratch_registry["plain"].display_name == "plain"
