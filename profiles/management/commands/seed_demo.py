"""`seed_demo <tenant_slug> [--members N] [--days D] [--seed S]`: synthetic data with planted groups.

Same seed, same members, events and planted groups. Re-running adds only the members that are
missing (so a larger --members grows the tenant) and never duplicates the catalogue; see
profiles.seeding for the details.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from profiles import seeding
from tenants.resolvers import tenant_by_slug


def _fen(value: float) -> str:
    return f"¥{value / 100:,.2f}"


class Command(BaseCommand):
    help = "Seed a tenant with a demo catalogue, members and events drawn from planted behavioural groups."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("--members", type=int, default=300, help="members of this seed (default 300)")
        parser.add_argument("--days", type=int, default=90,
                            help=f"days of behaviour, at least {seeding.MIN_DAYS} (default 90)")
        parser.add_argument("--seed", type=int, default=1, help="the random seed (default 1)")
        parser.add_argument("--until", type=date.fromisoformat, default=None,
                            help="last day of the window is the day before this date, Shanghai time "
                                 "(YYYY-MM-DD, default today)")
        parser.add_argument("--planted-dir", type=Path, default=None,
                            help="where the planted-groups CSV goes (default var/seed/)")

    def handle(self, *args, tenant_slug: str, members: int, days: int, seed: int, until: date | None,
               planted_dir: Path | None, verbosity: int, **options):
        tenant = tenant_by_slug(tenant_slug)
        if tenant is None:
            raise CommandError(_("没有标识为 %(slug)s 的商户。") % {"slug": tenant_slug})
        if members < 0:
            raise CommandError(_("--members 不能为负数。"))
        if days < seeding.MIN_DAYS:
            raise CommandError(_("--days 至少为 %(n)d（流失会员需要先活跃、再沉寂 %(lapse)d 天）。")
                               % {"n": seeding.MIN_DAYS, "lapse": seeding.LAPSE_DAYS})
        end = seeding.default_end(until) if until else None
        bar = tqdm(total=members, unit="member", file=sys.stderr, disable=verbosity == 0 or None,
                   desc=tenant_slug)
        events = 0

        def progress(n_members: int, n_events: int) -> None:
            nonlocal events
            events += n_events
            bar.update(n_members)
            bar.set_postfix(events=events, refresh=False)

        try:
            report = seeding.seed_tenant(tenant, members=members, days=days, seed=seed, end=end,
                                         planted_dir=planted_dir, progress=progress)
        finally:
            bar.close()
        self._print(report)

    def _print(self, report: seeding.SeedReport) -> None:
        out = self.stdout.write
        out(_("商户 %(slug)s，种子 %(seed)d：新增会员 %(added)d，已存在跳过 %(skipped)d；"
              "新增事件 %(events)d，其中购买 %(purchases)d。")
            % {"slug": report.tenant_slug, "seed": report.seed, "added": report.added,
               "skipped": report.skipped, "events": report.events, "purchases": report.purchases})
        out(_("商品目录：新建分类 %(c)d，新建商品 %(i)d。")
            % {"c": report.categories_created, "i": report.items_created})
        for note in report.notes:
            out(note)
        if report.seconds > 0:
            out(_("用时 %(s).1f 秒：%(m).0f 会员/秒，%(e).0f 事件/秒。")
                % {"s": report.seconds, "m": report.added / report.seconds, "e": report.events / report.seconds})
        if report.groups:
            out(_("埋入的分群（本次新增的会员）："))
            out(f"  {'group':<11} {'members':>8} {'purchases':>10} {'spend':>12}  top categories")
            for spec in seeding.GROUPS:
                stats = report.groups.get(spec.name)
                if stats is None:
                    continue
                top = "、".join(f"{c}×{n}" for c, n in stats.categories.most_common(3)) or "—"
                out(f"  {spec.name:<11} {stats.members:>8} {stats.mean_purchases:>10.2f} "
                    f"{_fen(stats.mean_spend_fen):>12}  {top}")
                out(f"  {'':<11} {spec.label}")
        names = {item.sku: item.name for item in seeding.CATALOGUE}
        out(_("埋入的先后购买（买了 A，几天内再买 B）："))
        for n, pair in enumerate(report.pairs):
            out(_("  %(a)s %(an)s → %(b)s %(bn)s：概率 %(p).0f%%，%(lo)d–%(hi)d 天；本次 %(first)d 人买了 A，"
                  "其中 %(then)d 人随后买了 B")
                % {"a": pair.first, "an": names.get(pair.first, ""), "b": pair.then, "bn": names.get(pair.then, ""),
                   "p": pair.probability * 100, "lo": pair.within_days[0], "hi": pair.within_days[1],
                   "first": report.pair_firsts[n], "then": report.pair_followed[n]})
        out(_("每位会员的埋入分群（仅供测试核对）：%(path)s") % {"path": report.planted_csv})
