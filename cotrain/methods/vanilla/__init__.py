"""Vanilla: both students trained side by side with CE only, no exchange (Tables 1-3 baseline)."""
from cotrain.methods.registry import declare_method

declare_method("vanilla", "cotrain.methods.vanilla.method:Vanilla", display_name="Vanilla")
