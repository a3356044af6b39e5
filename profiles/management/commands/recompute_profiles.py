"""`recompute_profiles <tenant_slug>`: run the profile computation now, the code path the workers run."""

from __future__ import annotations

import sys
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from profiles.computation import recompute
from profiles.models import ProfileRun
from tenants.resolvers import tenant_by_slug

STEPS = {"read": _("读取行为数据"), "model": _("训练模型"), "recommend": _("生成推荐"), "write": _("写入结果")}


class Command(BaseCommand):
    help = "Compute member profiles, item pairs and recommendations for a tenant now."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("--as-of", type=datetime.fromisoformat, default=None,
                            help="compute as of this moment (ISO 8601 with an offset; default now)")

    def handle(self, *args, tenant_slug: str, as_of: datetime | None, verbosity: int, **options):
        tenant = tenant_by_slug(tenant_slug)
        if tenant is None:
            raise CommandError(_("没有标识为 %(slug)s 的商户。") % {"slug": tenant_slug})
        if as_of is not None and as_of.tzinfo is None:
            raise CommandError(_("--as-of 需要带时区，例如 2026-03-01T00:00:00+08:00。"))
        bars: dict[str, tqdm] = {}

        def progress(step: str, done: int, total: int) -> None:
            bar = bars.get(step)
            if bar is None:
                bar = bars[step] = tqdm(total=total, desc=str(STEPS.get(step, step)), file=sys.stderr,
                                        disable=verbosity == 0 or None, leave=False)
            bar.update(done - bar.n)

        try:
            run = recompute.recompute(tenant, trigger="command", now=as_of, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
        if run is None:
            raise CommandError(_("商户 %(slug)s 正在计算画像，请稍后再试。") % {"slug": tenant_slug})
        if run.state != ProfileRun.State.SUCCEEDED:
            raise CommandError(_("画像计算失败：%(error)s") % {"error": run.error})
        self._print(tenant_slug, run)

    def _print(self, slug: str, run: ProfileRun) -> None:
        out = self.stdout.write
        s = run.stats
        out(_("商户 %(slug)s：会员 %(members)d（画像 %(profiled)d，拒绝画像 %(refused)d），有购买 %(buyers)d，"
              "事件 %(events)d。") % {"slug": slug, **{k: s[k] for k in ("members", "profiled", "refused", "buyers",
                                                                        "events")}})
        c = s["clusters"]
        out(_("聚类：k=%(k)s，轮廓系数 %(sil)s") % {"k": c["k"], "sil": c["silhouette"]})
        for item in c["items"]:
            out(f"  [{item['cluster']}] {item['label']} · {item['size']}：{item['description']}")
        p, m = s["propensity"], s["spend"]
        out(_("购买概率（30 天）：%(model)s，留出集 AUC %(auc)s，训练 %(rows)d 人，基准购买率 %(base)s")
            % {"model": p["model"], "auc": p["auc"], "rows": p["train_rows"], "base": p["base_rate"]})
        out(_("预测消费（90 天）：%(model)s，留出集 30 天 MAE ¥%(mae)s，预测/实际 %(ratio)s")
            % {"model": m["model"], "mae": None if m["mae_fen_30d"] is None else round(m["mae_fen_30d"] / 100, 2),
               "ratio": m["total_ratio"]})
        a = s["affinities"]
        out(_("商品关联：%(n)d 对（%(w)d 天窗口）") % {"n": a["pairs"], "w": a["window_days"]})
        for pair in a["top"][:5]:
            out(f"  {pair['a']} → {pair['b']}：{pair['members']} 人，置信度 {pair['confidence']}，提升度 {pair['lift']}")
        r = s["recommendations"]
        out(_("推荐：%(rows)d 条，覆盖 %(members)d 人") % r)
        seconds = ", ".join(f"{k} {v:.2f}s" for k, v in s["seconds"].items())
        out(_("用时 %(total).1f 秒（%(steps)s）") % {"total": s["total_seconds"], "steps": seconds})
