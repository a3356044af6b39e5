"""Console pages of the profile computation: the 画像 overview and its "重新计算" button.

Mounted under the members console; the middleware runs each view in ``request.tenant``'s context.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from profiles.computation import queries
from profiles.computation.actions import request_recompute
from profiles.computation.rfm import SEGMENTS
from profiles.console_views import require_change


@require_GET
def profile_overview(request):
    run = queries.last_successful_run()
    stats = run.stats if run else {}
    members = stats.get("profiled") or 0
    clusters = [
        {**c, "share": c["size"] / members * 100 if members else 0}
        for c in stats.get("clusters", {}).get("items", [])
    ]
    segments = [
        {"key": key, "label": label, "count": stats.get("rfm", {}).get(key, 0)} for key, label in SEGMENTS.items()
    ]
    return render(request, "members/profiles.html", {
        "run": run,
        "stats": stats,
        "clusters": clusters,
        "grid": queries.rfm_grid(run),
        "segments": segments,
        "affinities": queries.top_affinities(),
        "runs": queries.last_runs(),
    })


@require_POST
@require_change
def profile_recompute(request):
    request_recompute(request.tenant, actor=request.user)
    messages.success(request, _("已开始重新计算画像；会员较多时需要几分钟，完成后刷新本页查看。"))
    return HttpResponseRedirect(reverse("members:profiles", kwargs={"tenant_slug": request.tenant.slug}))
