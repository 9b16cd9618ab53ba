"""Sites, cells and outages of the simulated networks.

Each network builds a jittered grid of rural sites (radius close to the spacing so
that neighbours overlap) plus denser sites in towns. A site carries one cell per
radio and sector. The hazard knocks sites out: damage (long) or loss of mains
power (starts when batteries drain, short).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from dcm.simulate.geo import LocalProjection
from dcm.simulate.hazard import Hazard
from dcm.simulate.regions import Region

#: Radios a handset prefers, best first.
RADIO_PREFERENCE = ("NR", "LTE", "UMTS", "GSM")


def build_sites(region: Region, proj: LocalProjection, rng: np.random.Generator) -> pd.DataFrame:
    """True site positions: site_id, network, mcc, mnc, lon, lat, x, y, range_m, urban,
    tower (sites of several networks on one shared tower have the same number)."""
    land_xy = shapely.Polygon(proj.to_xy(*np.asarray(region.land.exterior.coords).T))
    minx, miny, maxx, maxy = land_xy.bounds
    frames: list[pd.DataFrame] = []
    towers = np.empty((0, 2))  # rural towers built so far (shareable)
    n_towers = 0
    for net in region.networks:
        s = net.rural_spacing_m
        ox, oy = rng.uniform(0, s, 2)
        gx, gy = np.meshgrid(
            np.arange(minx - s + ox, maxx + s, s), np.arange(miny - s + oy, maxy + s, s)
        )
        x = gx.ravel() + rng.uniform(-0.25, 0.25, gx.size) * s
        y = gy.ravel() + rng.uniform(-0.25, 0.25, gy.size) * s
        keep = shapely.contains_xy(land_xy, x, y)
        x, y = x[keep], y[keep]
        # A square grid needs 0.71 x spacing to cover everything: a little more gives the
        # overlap where a neighbour takes over part of a failed site's area, and
        # jitter leaves a few real coverage gaps.
        rural_range = s * rng.uniform(0.72, 0.88, len(x))
        # Operators share rural towers: a site close to an existing tower moves onto it
        # half of the time, and then shares its fate (mast, mains power).
        tower = np.arange(n_towers, n_towers + len(x))
        u_share = rng.uniform(size=len(x))
        if len(towers):
            dist, near = cKDTree(towers).query(np.column_stack((x, y)))
            share = (dist < 0.35 * s) & (u_share < 0.5)
            x = np.where(share, towers[near, 0], x)
            y = np.where(share, towers[near, 1], y)
            tower = np.where(share, near, tower)
        new_tower = tower >= n_towers
        tower[new_tower] = n_towers + np.arange(new_tower.sum())
        towers = np.vstack([towers, np.column_stack((x, y))[new_tower]])
        n_towers += int(new_tower.sum())
        ux, uy, ur = [], [], []
        for town in region.towns:
            n = max(1, round(town.population / net.people_per_urban_site))
            txy = proj.to_xy(np.array([town.lon]), np.array([town.lat]))[0]
            px = txy[0] + rng.normal(0, town.radius_m * 0.8, n)
            py = txy[1] + rng.normal(0, town.radius_m * 0.8, n)
            inside = shapely.contains_xy(land_xy, px, py)
            # A town site in the sea moves to the town centre instead.
            px = np.where(inside, px, txy[0])
            py = np.where(inside, py, txy[1])
            ux.append(px)
            uy.append(py)
            ur.append(rng.uniform(1_000, 1_800, n))
        n_urban = int(sum(len(a) for a in ux))
        # Town sites stand on their own towers (rooftops), numbered after all rural ones.
        urban_tower = 1_000_000 + sum(len(f) for f in frames) + np.arange(n_urban)
        all_x = np.concatenate([x, *ux])
        all_y = np.concatenate([y, *uy])
        lon, lat = proj.to_lonlat(all_x, all_y)
        n_sites = len(all_x)
        frames.append(
            pd.DataFrame(
                {
                    "site_id": [f"{net.key}-S{i:04d}" for i in range(n_sites)],
                    "network": net.key,
                    "mcc": net.mcc,
                    "mnc": net.mnc,
                    "lon": np.round(lon, 6),
                    "lat": np.round(lat, 6),
                    "x": all_x,
                    "y": all_y,
                    "range_m": np.round(np.concatenate([rural_range, *ur]), 0),
                    "urban": np.r_[np.zeros(len(x), bool), np.ones(n_sites - len(x), bool)],
                    "tower": np.r_[tower, urban_tower].astype(np.int64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def build_cells(sites: pd.DataFrame, region: Region, rng: np.random.Generator) -> pd.DataFrame:
    """One row per cell: site_row, site_id, network, mcc, net, radio, area, cell, unit,
    sector, n_sectors, azimuth0 (degrees of sector 0's start)."""
    radios_of = {net.key: net.radios for net in region.networks}
    n = len(sites)
    n_sectors = np.where(sites["urban"].to_numpy(), 3, rng.choice([1, 2, 3], n, p=[0.2, 0.2, 0.6]))
    azimuth0 = rng.uniform(0, 360, n)
    # Location/tracking areas: blocks of ~12 km, numbered per network.
    block = (
        np.floor(sites["x"].to_numpy() / 12_000).astype(int) * 7
        + np.floor(sites["y"].to_numpy() / 12_000).astype(int)
    ) % 90
    rows = []
    site_num = sites.groupby("network").cumcount().to_numpy()
    for radio in RADIO_PREFERENCE:
        has = sites["network"].map(lambda k, r=radio: r in radios_of[k]).to_numpy(bool)
        for sector in range(3):
            sel = np.flatnonzero(has & (n_sectors > sector))
            num = site_num[sel]
            if radio in ("LTE", "NR"):
                cell = (10_000 + num) * 256 + sector + 1  # eNB id * 256 + sector (ECI)
                area = 20_000 + block[sel] * 10 + 1  # TAC
                unit = (num * 3 + sector) % 504  # PCI
            elif radio == "UMTS":
                cell = (100 + num // 200) * 65_536 + (num % 200) * 10 + sector + 1  # RNC + CID
                area = 1_000 + block[sel] * 10 + 2  # LAC
                unit = (num * 7 + sector * 3) % 512  # PSC
            else:
                cell = 10_000 + num * 10 + sector + 1
                area = 1_000 + block[sel] * 10 + 2
                unit = np.full(len(sel), -1)
            rows.append(
                pd.DataFrame(
                    {
                        "site_row": sel,
                        "radio": radio,
                        "area": area,
                        "cell": cell,
                        "unit": unit,
                        "sector": sector,
                        "n_sectors": n_sectors[sel],
                        "azimuth0": azimuth0[sel],
                    }
                )
            )
    cells = pd.concat(rows, ignore_index=True)
    for col in ("site_id", "network", "mcc", "mnc"):
        cells[col] = sites[col].to_numpy()[cells["site_row"].to_numpy()]
    cells = cells.rename(columns={"mnc": "net"})
    return cells.sort_values(["site_row", "radio", "sector"], ignore_index=True)


def assign_outages(
    sites: pd.DataFrame,
    hazard: Hazard | None,
    *,
    onset: pd.Timestamp,
    end: pd.Timestamp,
    proj: LocalProjection,
    land: shapely.Polygon,
    rng: np.random.Generator,
    outage_hours: tuple[float, float] | None = None,
    clustering: float = 1.0,
) -> pd.DataFrame:
    """Add intensity, down_from, up_at (UTC, NaT = never / not by ``end``) and cause.

    ``outage_hours`` (min, max): every outage lasts a log-uniform duration in that
    range instead of the hazard's own. ``clustering`` > 1 concentrates failures where
    harm is highest (chance ~ harm ** (gamma * clustering)) with the same expected
    number of failures.
    """
    out = sites.copy()
    n = len(out)
    out["intensity"] = 0.0
    out["down_from"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    out["up_at"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    out["cause"] = ""
    # Draw every random number even without a hazard so that control and disaster
    # runs of one seed share the same measurement stream structure. Whether a site is
    # hit, and when, is drawn per tower: co-located sites fall together; each operator
    # restores its own equipment.
    _, tower = np.unique(out["tower"].to_numpy(), return_inverse=True)
    n_towers = int(tower.max()) + 1 if n else 0
    u_damage, u_power = rng.uniform(size=n_towers)[tower], rng.uniform(size=n_towers)[tower]
    u_delay = rng.uniform(size=n_towers)[tower]
    u_dur, u_long = rng.uniform(size=n), rng.uniform(size=n)
    if hazard is None:
        return out
    lon, lat = out["lon"].to_numpy(), out["lat"].to_numpy()
    inten = hazard.intensity(lon, lat, proj)
    out["intensity"] = inten
    arrival = hazard.arrival_h(lon, lat, proj, land)
    harm = hazard.harm(lon, lat, proj)
    p_damage = hazard.damage_max * harm**hazard.damage_gamma
    p_power = hazard.power_max * harm**hazard.power_gamma
    if clustering != 1.0:
        p_damage = _concentrate(p_damage, harm, clustering)
        p_power = _concentrate(p_power, harm, clustering)
    damaged = u_damage < p_damage
    power = ~damaged & (u_power < p_power)
    lo, hi = hazard.damage_delay_h
    start_h = np.where(damaged, lo + (hi - lo) * u_delay, 0.0)
    days = hazard.damage_days[0] + (hazard.damage_days[1] - hazard.damage_days[0]) * u_dur
    days = np.where(u_long < hazard.damage_long_share, 8 + 4 * u_dur, days)
    dur_h = np.where(damaged, days * 24, 0.0)
    lo, hi = hazard.power_delay_h
    start_h = np.where(power, lo + (hi - lo) * u_delay, start_h)
    lo, hi = hazard.power_hours
    dur_h = np.where(power, lo + (hi - lo) * u_dur, dur_h)
    if outage_hours is not None:
        lo, hi = np.log(outage_hours[0]), np.log(outage_hours[1])
        dur_h = np.where(damaged | power, np.exp(lo + (hi - lo) * u_dur), 0.0)
    hit = damaged | power
    # Nothing fails before onset (a cyclone's outer bands may arrive a little early).
    start_h = np.maximum(arrival + start_h, 0.0)
    down = onset + pd.to_timedelta(np.round(start_h * 3600), unit="s")
    up = down + pd.to_timedelta(np.round(dur_h * 3600), unit="s")
    hit &= down < end
    down_s = pd.Series(down, index=out.index).where(hit)
    up_s = pd.Series(up, index=out.index).where(hit & (up < end))
    out["down_from"] = down_s.astype("datetime64[ns, UTC]")
    out["up_at"] = up_s.astype("datetime64[ns, UTC]")
    out["cause"] = np.where(hit, np.where(damaged, "damage", "power"), "")
    return out


def _concentrate(p: np.ndarray, harm: np.ndarray, clustering: float) -> np.ndarray:
    """Chances ``p`` reweighted by ``harm ** (clustering - 1)``, same sum where possible
    (no chance above 1)."""
    total = float(p.sum())
    q = p * harm ** (clustering - 1.0)
    for _ in range(20):
        if q.sum() <= 0 or total <= 0:
            break
        free = q < 1.0
        # Scale the chances not yet at 1 so that the sum comes back to the total.
        missing = total - float(q[~free].sum())
        if missing <= 0 or not free.any():
            break
        q = np.where(free, q * missing / float(q[free].sum()), q)
        if (q <= 1.0 + 1e-12).all():
            break
        q = np.minimum(q, 1.0)
    return np.minimum(q, 1.0)
