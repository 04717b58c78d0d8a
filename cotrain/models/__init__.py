"""Students, their encoder registry and Γ transforms (the pair of students is `cotrain.pair`)."""
from cotrain.models.gamma import Gamma
from cotrain.models.registry import ENCODERS, encoder_names, get_encoder_spec, register_encoder
from cotrain.models.students import Student, StudentOutput, build_student

__all__ = ["ENCODERS", "Gamma", "Student", "StudentOutput", "build_student", "encoder_names",
           "get_encoder_spec", "register_encoder"]
