"""IFVD's losses: IFV maps and pixel KD (declared, with its options, in this package's ``__init__``)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from cotrain.losses.kd import class_mean_kl_loss, ifv_loss, ifv_map, labels_on_grid
from cotrain.methods.base import Method, PairContext
from cotrain.methods.ifvd import IFVDOptions
from cotrain.methods.teachers import FrozenTeachers, student_classes
from cotrain.models import Student, StudentOutput


class IFVD(Method):
    """Intra-class feature variation distillation plus pixel-wise KD, from frozen teachers or mutual."""

    name = "ifvd"
    term_names = ("kd_cnn", "kd_vit", "ifv_cnn", "ifv_vit", "pkd_cnn", "pkd_vit")
    Options = IFVDOptions

    def __init__(self, cnn: Student, vit: Student, options: IFVDOptions) -> None:
        super().__init__(cnn, vit, options)
        # docs/method.md, "IFVD": offline (the paper's grouping) loads frozen Vanilla teachers; mutual needs none.
        if options.needs_teachers():
            self.teachers = FrozenTeachers(f"{self.name} (ifvd_mode=offline)", options.teacher_cnn,
                                           options.teacher_vit, student_classes(cnn))

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        teacher_c, teacher_v = self.teacher_outputs(ctx)
        kd_c, ifv_c, pkd_c = self.side_terms(ctx, ctx.out_cnn, teacher_c, student_is_cnn=True)
        kd_v, ifv_v, pkd_v = self.side_terms(ctx, ctx.out_vit, teacher_v, student_is_cnn=False)
        return kd_c, kd_v, {"kd_cnn": kd_c, "kd_vit": kd_v, "ifv_cnn": ifv_c, "ifv_vit": ifv_v,
                            "pkd_cnn": pkd_c, "pkd_vit": pkd_v}

    def teacher_outputs(self, ctx: PairContext) -> tuple[Optional[StudentOutput], Optional[StudentOutput]]:
        """(what teaches the CNN: a ViT's output, what teaches the ViT: a CNN's); None: that side has no teacher."""
        if self.options.ifvd_mode == "mutual":
            return ctx.out_vit, ctx.out_cnn
        out = self.teachers.outputs(ctx.images)
        return out.get("of_cnn"), out.get("of_vit")

    def side_terms(self, ctx: PairContext, student: StudentOutput, teacher: Optional[StudentOutput],
                   student_is_cnn: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(λ_ifv·IFV + λ_kd·pixel KD, the unweighted IFV MSE, the unweighted pixel KD) of one student."""
        o = self.options
        if teacher is None:
            return ctx.zero(), ctx.zero(), ctx.zero()
        out_c, out_v = (student, teacher) if student_is_cnn else (teacher, student)
        map_c, map_v = self.ifv_maps(ctx, out_c, out_v)
        ifv = ifv_loss(map_c, map_v) if student_is_cnn else ifv_loss(map_v, map_c)
        pkd = class_mean_kl_loss(teacher.logits, student.logits, ctx.valid, o.temperature)
        return o.ifvd_weight * ifv + o.ifvd_kd_weight * pkd, ifv, pkd

    def ifv_maps(self, ctx: PairContext, out_c: StudentOutput,
                 out_v: StudentOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """(CNN, ViT) IFV maps, each (N, h, w), on one common grid."""
        feat_c, feat_v = self.features(out_c, out_v)
        labels, valid = labels_on_grid(ctx.target, ctx.valid, tuple(feat_v.shape[-2:]))
        k = out_c.logits.shape[1]
        return ifv_map(feat_c, labels, valid, k), ifv_map(feat_v, labels, valid, k)

    def features(self, out_c: StudentOutput, out_v: StudentOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """(CNN, ViT) features on one common grid."""
        if self.options.ifvd_features == "decoder":
            return out_c.decoded, out_v.decoded
        # Last encoder stage: CNN H/16 features average-pooled to the ViT's H/32 grid, so both maps share positions.
        return F.adaptive_avg_pool2d(out_c.last.float(), tuple(out_v.last.shape[-2:])), out_v.last
