"""The compiled transport of the cascade Monte Carlo (numba).

One call of :func:`simulate_batch` transports a batch of primaries, each from its own seed,
through a module and scores visible energy and energy-weighted time on the fine grid.

Geometry: a module of ``depth`` along z (z = 0 at the front face), laterally infinite (the
neighbouring modules are of the same technology). Along z a period of ``zb`` boundaries is
repeated; in x and y an optional square lattice of square fibres (side ``fs``, pitch ``fp``).
``mat_map[layer, in_fibre]`` gives the material index. Transport stops at every boundary,
so every step lies in one material.

Particles (type codes): 0 photon, 1 electron, 2 positron; heavy primaries (muons, charged
and neutral hadrons) are handled by :func:`_transport_heavy`, which feeds the photons of
hadronic interactions into the same EM stack.

Physics per particle (sources in :mod:`calopt.simulation.cascade.physics`):

* photons: photo-electric absorption (local deposit), Compton (Klein-Nishina sampling as in
  G4KleinNishinaCompton), pair production (Bethe-Heitler x-sampling with the high-energy
  rejection function, physics-reference §3.4; Tsai/Urban lepton angles); below the photon cut
  the energy is deposited locally;
* e+-: condensed history with restricted continuous loss (range-table integration), Gaussian
  (Bohr) fluctuations of the restricted loss, discrete bremsstrahlung (Tsai, complete
  screening) and Moller/Bhabha delta rays above the cuts; multiple scattering with the
  Highland width; steps limited by boundaries, 10 % of the range, and a Highland angle of
  0.3 rad; below the tracking cut the rest is deposited locally and positrons annihilate at
  rest into two 511 keV photons. In-flight annihilation and fluorescence are neglected.
* visible energy: energy deposited in active materials, with Birks' law
  dL = dE / (1 + kB dE/dx).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from calopt.simulation.cascade.physics import BG_GRID_LOG_MIN, LOG_BG_STEP, LOG_E_MIN, LOG_E_STEP, Q, S

__all__ = ["DIAG", "N_DIAG", "simulate_batch"]

# numba freezes module-level integers; class attributes are not visible to it
Q_MU_PE, Q_MU_COMPT, Q_MU_PAIR, Q_MU_TOT = Q.MU_PE, Q.MU_COMPT, Q.MU_PAIR, Q.MU_TOT
Q_DEDX_EM, Q_DEDX_EP, Q_LINV_BREM = Q.DEDX_EM, Q.DEDX_EP, Q.LINV_BREM
Q_LINV_MOLLER, Q_LINV_BHABHA, Q_RANGE_EM, Q_RANGE_EP = Q.LINV_MOLLER, Q.LINV_BHABHA, Q.RANGE_EM, Q.RANGE_EP
S_X0, S_NEL, S_KB, S_ACTIVE, S_LAMBDA_I, S_XI = S.X0, S.NEL, S.KB, S.ACTIVE, S.LAMBDA_I, S.XI

ME = 0.51099895
C_LIGHT = 299.792458  # mm/ns
EPS_PUSH = 1e-7  # mm, moves a particle across the boundary it stopped on
FAR = 1.0e30
LATERAL_LIMIT = 3000.0  # mm: particles further than this from the axis are dropped
STACK_SIZE = 200_000

N_DIAG = 8


class DIAG:
    """Columns of the per-shower diagnostics array (all MeV)."""

    VISIBLE_WINDOW = 0  # visible energy inside the scoring window
    VISIBLE_ALL = 1  # visible energy anywhere
    DEPOSITED = 2  # energy deposited in any material (visible or not, before Birks)
    BACK = 3  # escaped through the front face
    REAR = 4  # leaked through the back face
    LATERAL = 5  # lost beyond the lateral limit
    INVISIBLE_HADRONIC = 6  # hadronic energy not seen (binding, neutrons, h/e < 1)
    INTERACTION_DEPTH = 7  # depth [mm] of the nuclear interaction of a hadron, -1 if none


D_VISIBLE_WINDOW, D_VISIBLE_ALL, D_DEPOSITED = DIAG.VISIBLE_WINDOW, DIAG.VISIBLE_ALL, DIAG.DEPOSITED
D_BACK, D_REAR, D_LATERAL, D_INVISIBLE_HADRONIC = DIAG.BACK, DIAG.REAR, DIAG.LATERAL, DIAG.INVISIBLE_HADRONIC
D_INTERACTION_DEPTH = DIAG.INTERACTION_DEPTH


@nb.njit(cache=True, inline="always")
def _interp(tables, mat, q, loge):
    f = (loge - LOG_E_MIN) / LOG_E_STEP
    if f <= 0.0:
        return tables[mat, q, 0]
    i = int(f)
    n = tables.shape[2]
    if i >= n - 1:
        return tables[mat, q, n - 1]
    w = f - i
    return tables[mat, q, i] * (1.0 - w) + tables[mat, q, i + 1] * w


@nb.njit(cache=True)
def _inverse_range(tables, mat, q, r):
    """Kinetic energy whose range is r (binary search in the monotonic range table)."""
    n = tables.shape[2]
    if r <= tables[mat, q, 0]:
        return math.exp(LOG_E_MIN) * r / tables[mat, q, 0]
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tables[mat, q, mid] > r:
            hi = mid
        else:
            lo = mid
    r0 = tables[mat, q, lo]
    r1 = tables[mat, q, hi]
    w = (r - r0) / (r1 - r0)
    return math.exp(LOG_E_MIN + (lo + w) * LOG_E_STEP)


@nb.njit(cache=True, inline="always")
def _layer(zb, z):
    pz = zb[zb.shape[0] - 1]
    zz = z - math.floor(z / pz) * pz
    k = 0
    while k < zb.shape[0] - 2 and zz >= zb[k + 1]:
        k += 1
    return k, zz


@nb.njit(cache=True, inline="always")
def _in_fibre(x, y, fp, fs):
    u = x - math.floor(x / fp) * fp
    v = y - math.floor(y / fp) * fp
    return (u < fs) and (v < fs)


@nb.njit(cache=True)
def _material(geo_z, mat_map, has_fibres, fp, fs, x, y, z):
    k, _ = _layer(geo_z, z)
    if has_fibres and _in_fibre(x, y, fp, fs):
        return mat_map[k, 1]
    return mat_map[k, 0]


@nb.njit(cache=True)
def _axis_distance(c, d, fp, fs):
    if d == 0.0:
        return FAR
    u = c - math.floor(c / fp) * fp
    if d > 0.0:
        nxt = fs if u < fs else fp
        return (nxt - u) / d
    prev = 0.0 if u < fs else fs
    return (u - prev) / (-d)


@nb.njit(cache=True)
def _distance(geo_z, has_fibres, fp, fs, x, y, z, ux, uy, uz):
    k, zz = _layer(geo_z, z)
    if uz > 0.0:
        d = (geo_z[k + 1] - zz) / uz
    elif uz < 0.0:
        d = (zz - geo_z[k]) / (-uz)
    else:
        d = FAR
    if has_fibres:
        dx = _axis_distance(x, ux, fp, fs)
        if dx < d:
            d = dx
        dy = _axis_distance(y, uy, fp, fs)
        if dy < d:
            d = dy
    return d


@nb.njit(cache=True)
def _rotate(ux, uy, uz, cost, phi):
    """Direction at polar angle acos(cost) and azimuth phi around (ux, uy, uz)."""
    sint = math.sqrt(max(0.0, 1.0 - cost * cost))
    cp = math.cos(phi)
    sp = math.sin(phi)
    if abs(uz) > 0.99999999:
        s = 1.0 if uz > 0 else -1.0
        return sint * cp, sint * sp, s * cost
    perp = math.sqrt(1.0 - uz * uz)
    nx = ux * cost + sint * (ux * uz * cp - uy * sp) / perp
    ny = uy * cost + sint * (uy * uz * cp + ux * sp) / perp
    nz = uz * cost - sint * perp * cp
    norm = math.sqrt(nx * nx + ny * ny + nz * nz)
    return nx / norm, ny / norm, nz / norm


@nb.njit(cache=True)
def _lepton_angle(energy_total):
    """Polar angle of a pair lepton or brems photon, Tsai/Urban sampler (physics-reference §3.4)."""
    r1 = np.random.random() + 1e-300
    r2 = np.random.random() + 1e-300
    if np.random.random() < 9.0 / 36.0:
        u = -math.log(r1 * r2) / 0.625
    else:
        u = -math.log(r1 * r2) / 1.875
    return min(u * ME / energy_total, math.pi)


@nb.njit(cache=True)
def _score(grid, tgrid, diag, prof, rad, e_vis, x, y, z, t, pitch, half, edges, depth, x0, y0, ax, ay):
    """Add visible energy at (x, y, z) and time t to the grid and the diagnostics."""
    diag[D_VISIBLE_ALL] += e_vis
    nz = prof.shape[0]
    iz = int(z / depth * nz)
    if 0 <= iz < nz:
        prof[iz] += e_vis
    # radial distance from the incident axis
    dz = z
    rx = x - (x0 + ax * dz)
    ry = y - (y0 + ay * dz)
    ir = int(math.sqrt(rx * rx + ry * ry))  # 1 mm bins
    if ir < rad.shape[0]:
        rad[ir] += e_vis
    ix = math.floor((x + half) / pitch)
    iy = math.floor((y + half) / pitch)
    ns = edges.shape[0] - 1
    if ix < 0 or iy < 0 or ix >= grid.shape[2] or iy >= grid.shape[1]:
        return
    s = 0
    while s < ns - 1 and z >= edges[s + 1]:
        s += 1
    grid[s, iy, ix] += e_vis
    tgrid[s, iy, ix] += e_vis * t
    diag[D_VISIBLE_WINDOW] += e_vis


@nb.njit(cache=True)
def _push(st, stf, n, ptype, e, x, y, z, ux, uy, uz, t):
    if n >= STACK_SIZE:
        return n, False
    st[n] = ptype
    stf[n, 0] = e
    stf[n, 1] = x
    stf[n, 2] = y
    stf[n, 3] = z
    stf[n, 4] = ux
    stf[n, 5] = uy
    stf[n, 6] = uz
    stf[n, 7] = t
    return n + 1, True


@nb.njit(cache=True)
def _deposit_local(
    tables,
    scalars,
    mat,
    e,
    positron_like,
    grid,
    tgrid,
    diag,
    prof,
    rad,
    x,
    y,
    z,
    t,
    pitch,
    half,
    edges,
    depth,
    x0,
    y0,
    ax,
    ay,
):
    """Deposit energy e of a stopped electron (or absorbed photon) at a point."""
    diag[D_DEPOSITED] += e
    if scalars[mat, S_ACTIVE] > 0.0:
        kb = scalars[mat, S_KB]
        vis = e
        if kb > 0.0 and e > 0.0:
            q = Q_DEDX_EP if positron_like else Q_DEDX_EM
            dedx = _interp(tables, mat, q, math.log(max(e, 1e-3)))
            vis = e / (1.0 + kb * dedx)
        _score(grid, tgrid, diag, prof, rad, vis, x, y, z, t, pitch, half, edges, depth, x0, y0, ax, ay)


@nb.njit(cache=True)
def _run_stack(
    st,
    stf,
    n,
    tables,
    scalars,
    geo_z,
    mat_map,
    has_fibres,
    fp,
    fs,
    depth,
    cut_g,
    cut_d,
    cut_e,
    grid,
    tgrid,
    diag,
    prof,
    rad,
    pitch,
    half,
    edges,
    x0,
    y0,
    ax,
    ay,
):
    """Transport every particle on the stack (depth first) until the stack is empty."""
    overflow = False
    while n > 0:
        n -= 1
        ptype = st[n]
        e = stf[n, 0]
        x = stf[n, 1]
        y = stf[n, 2]
        z = stf[n, 3]
        ux = stf[n, 4]
        uy = stf[n, 5]
        uz = stf[n, 6]
        t = stf[n, 7]
        if ptype == 0:
            # ------------------------------------------------------------- photon
            while True:
                if z < 0.0:
                    diag[D_BACK] += e
                    break
                if z >= depth:
                    diag[D_REAR] += e
                    break
                if abs(x) > LATERAL_LIMIT or abs(y) > LATERAL_LIMIT:
                    diag[D_LATERAL] += e
                    break
                mat = _material(geo_z, mat_map, has_fibres, fp, fs, x, y, z)
                if e <= cut_g:
                    _deposit_local(
                        tables,
                        scalars,
                        mat,
                        e,
                        False,
                        grid,
                        tgrid,
                        diag,
                        prof,
                        rad,
                        x,
                        y,
                        z,
                        t,
                        pitch,
                        half,
                        edges,
                        depth,
                        x0,
                        y0,
                        ax,
                        ay,
                    )
                    break
                loge = math.log(e)
                mu = _interp(tables, mat, Q_MU_TOT, loge)
                s = -math.log(1.0 - np.random.random()) / mu
                dgeo = _distance(geo_z, has_fibres, fp, fs, x, y, z, ux, uy, uz)
                if s > dgeo:
                    s = dgeo + EPS_PUSH
                    x += ux * s
                    y += uy * s
                    z += uz * s
                    t += s / C_LIGHT
                    continue
                x += ux * s
                y += uy * s
                z += uz * s
                t += s / C_LIGHT
                r = np.random.random() * mu
                mu_pe = _interp(tables, mat, Q_MU_PE, loge)
                mu_c = _interp(tables, mat, Q_MU_COMPT, loge)
                if r < mu_pe:
                    _deposit_local(
                        tables,
                        scalars,
                        mat,
                        e,
                        False,
                        grid,
                        tgrid,
                        diag,
                        prof,
                        rad,
                        x,
                        y,
                        z,
                        t,
                        pitch,
                        half,
                        edges,
                        depth,
                        x0,
                        y0,
                        ax,
                        ay,
                    )
                    break
                elif r < mu_pe + mu_c:
                    # Compton, G4KleinNishinaCompton sampling (physics-reference §3.5)
                    kappa = e / ME
                    eps0 = 1.0 / (1.0 + 2.0 * kappa)
                    eps0sq = eps0 * eps0
                    alpha1 = -math.log(eps0)
                    alpha2 = 0.5 * (1.0 - eps0sq)
                    while True:
                        if alpha1 / (alpha1 + alpha2) > np.random.random():
                            eps = math.exp(-alpha1 * np.random.random())
                            epssq = eps * eps
                        else:
                            epssq = eps0sq + (1.0 - eps0sq) * np.random.random()
                            eps = math.sqrt(epssq)
                        onecost = (1.0 - eps) / (eps * kappa)
                        sint2 = onecost * (2.0 - onecost)
                        g = 1.0 - eps * sint2 / (1.0 + epssq)
                        if g >= np.random.random():
                            break
                    cost = 1.0 - onecost
                    phi = 2.0 * math.pi * np.random.random()
                    k1 = e * eps
                    te = e - k1
                    nx, ny, nz = _rotate(ux, uy, uz, cost, phi)
                    # electron direction from momentum conservation
                    px = e * ux - k1 * nx
                    py = e * uy - k1 * ny
                    pz = e * uz - k1 * nz
                    pn = math.sqrt(px * px + py * py + pz * pz)
                    if te > cut_e and pn > 0.0:
                        n, ok = _push(st, stf, n, 1, te, x, y, z, px / pn, py / pn, pz / pn, t)
                        overflow = overflow or not ok
                    else:
                        _deposit_local(
                            tables,
                            scalars,
                            mat,
                            te,
                            False,
                            grid,
                            tgrid,
                            diag,
                            prof,
                            rad,
                            x,
                            y,
                            z,
                            t,
                            pitch,
                            half,
                            edges,
                            depth,
                            x0,
                            y0,
                            ax,
                            ay,
                        )
                    e = k1
                    ux, uy, uz = nx, ny, nz
                    continue
                else:
                    # pair production
                    if e < 2.0:
                        xx = ME / e + (0.5 - ME / e) * np.random.random()
                        if np.random.random() < 0.5:
                            xx = 1.0 - xx
                    else:
                        lo = ME / e
                        while True:
                            xx = lo + (1.0 - 2.0 * lo) * np.random.random()
                            if np.random.random() <= 1.0 - 4.0 / 3.0 * xx * (1.0 - xx):
                                break
                    em = xx * e
                    ep = e - em
                    phi = 2.0 * math.pi * np.random.random()
                    th = _lepton_angle(em)
                    dx1, dy1, dz1 = _rotate(ux, uy, uz, math.cos(th), phi)
                    th = _lepton_angle(ep)
                    dx2, dy2, dz2 = _rotate(ux, uy, uz, math.cos(th), phi + math.pi)
                    n, ok = _push(st, stf, n, 1, max(em - ME, 0.0), x, y, z, dx1, dy1, dz1, t)
                    overflow = overflow or not ok
                    n, ok = _push(st, stf, n, 2, max(ep - ME, 0.0), x, y, z, dx2, dy2, dz2, t)
                    overflow = overflow or not ok
                    break
        else:
            # ------------------------------------------------------------- e- / e+
            positron = ptype == 2
            q_range = Q_RANGE_EP if positron else Q_RANGE_EM
            q_delta = Q_LINV_BHABHA if positron else Q_LINV_MOLLER
            alive = True
            while True:
                if z < 0.0:
                    diag[D_BACK] += e + (2.0 * ME if positron else 0.0)
                    alive = False
                    break
                if z >= depth:
                    diag[D_REAR] += e + (2.0 * ME if positron else 0.0)
                    alive = False
                    break
                if abs(x) > LATERAL_LIMIT or abs(y) > LATERAL_LIMIT:
                    diag[D_LATERAL] += e + (2.0 * ME if positron else 0.0)
                    alive = False
                    break
                mat = _material(geo_z, mat_map, has_fibres, fp, fs, x, y, z)
                if e <= cut_e:
                    break
                loge = math.log(e)
                linv_b = _interp(tables, mat, Q_LINV_BREM, loge)
                linv_d = _interp(tables, mat, q_delta, loge)
                linv = linv_b + linv_d
                s_int = -math.log(1.0 - np.random.random()) / linv if linv > 0.0 else FAR
                rng = _interp(tables, mat, q_range, loge)
                etot = e + ME
                p = math.sqrt(e * (e + 2.0 * ME))
                beta = p / etot
                x0m = scalars[mat, S_X0]
                # step limit: Highland angle <= 0.3 rad, but not below 10 % of the range; at most X0/2
                s_msc = x0m * (0.3 * p * beta / 13.6) ** 2
                s_lim = min(max(s_msc, 0.1 * rng), 0.5 * x0m)
                dgeo = _distance(geo_z, has_fibres, fp, fs, x, y, z, ux, uy, uz)
                s = min(s_int, s_lim, dgeo, rng)
                boundary = s == dgeo
                discrete = (s == s_int) and not boundary
                # continuous energy loss through the range table, with Bohr fluctuations
                if s >= rng:
                    de = e
                else:
                    e1 = _inverse_range(tables, mat, q_range, rng - s)
                    de = e - e1
                    tmax = e if positron else 0.5 * e
                    tc = min(cut_d, tmax)
                    var = (
                        2.0
                        * math.pi
                        * 2.8179403262e-12**2
                        * ME
                        * scalars[mat, S_NEL]
                        * s
                        * tc
                        * (1.0 - 0.5 * beta * beta)
                        / (beta * beta)
                    )
                    if var > 0.0:
                        de += math.sqrt(var) * np.random.normal()
                    if de < 0.0:
                        de = 0.0
                    if de > e:
                        de = e
                # time at the mean velocity over the step
                emid = e - 0.5 * de
                bmid = math.sqrt(max(emid * (emid + 2.0 * ME), 1e-12)) / (emid + ME)
                sp = s + EPS_PUSH if boundary else s
                xm = x + ux * 0.5 * s
                ym = y + uy * 0.5 * s
                zm = z + uz * 0.5 * s
                tm = t + 0.5 * s / (bmid * C_LIGHT)
                if de > 0.0:
                    diag[D_DEPOSITED] += de
                    if scalars[mat, S_ACTIVE] > 0.0:
                        kb = scalars[mat, S_KB]
                        vis = de / (1.0 + kb * de / s) if (kb > 0.0 and s > 0.0) else de
                        _score(
                            grid, tgrid, diag, prof, rad, vis, xm, ym, zm, tm, pitch, half, edges, depth, x0, y0, ax, ay
                        )
                # multiple scattering at the mid-step energy: 1 - cos(theta) exponential with mean
                # theta0^2 (Highland), truncated to [0, 2]; identical to a 2-D Gaussian of width
                # theta0 at small angles and isotropic in the limit of large theta0
                nx, ny, nz = ux, uy, uz
                if s > 0.0:
                    pb = emid * (emid + 2.0 * ME) / (emid + ME)
                    xr = s / x0m
                    th0 = 13.6 / pb * math.sqrt(xr) * max(1.0 + 0.038 * math.log(xr), 0.1)
                    a = th0 * th0
                    if a > 1e-12:
                        if a < 0.05:
                            omc = -a * math.log(1.0 - np.random.random())
                            if omc > 2.0:
                                omc = 2.0
                        else:
                            omc = -a * math.log(1.0 - np.random.random() * (1.0 - math.exp(-2.0 / a)))
                        nx, ny, nz = _rotate(ux, uy, uz, 1.0 - omc, 2.0 * math.pi * np.random.random())
                if boundary:
                    # along the old direction, so that the boundary is crossed
                    x += ux * sp
                    y += uy * sp
                    z += uz * sp
                else:
                    # along the mean of the old and new directions: a lateral displacement of
                    # ~ s theta / 2, correlated with the deflection (PDG: correlation sqrt(3)/2)
                    mx = ux + nx
                    my = uy + ny
                    mz = uz + nz
                    mn = math.sqrt(mx * mx + my * my + mz * mz)
                    if mn > 1e-6:
                        x += mx / mn * s
                        y += my / mn * s
                        z += mz / mn * s
                ux, uy, uz = nx, ny, nz
                t += sp / (bmid * C_LIGHT)
                e -= de
                if e <= cut_e:
                    break
                if discrete:
                    etot = e + ME
                    if np.random.random() * linv < linv_b:
                        # bremsstrahlung, Tsai complete screening: y = k/E from 1/y, accept 1 - y + 0.75 y^2
                        yc = cut_g / etot
                        ym_ = e / etot
                        if ym_ <= yc:
                            continue
                        while True:
                            yy = yc * math.exp(np.random.random() * math.log(ym_ / yc))
                            if np.random.random() <= 1.0 - yy + 0.75 * yy * yy:
                                break
                        k = yy * etot
                        th = _lepton_angle(etot)
                        gx, gy, gz = _rotate(ux, uy, uz, math.cos(th), 2.0 * math.pi * np.random.random())
                        n, ok = _push(st, stf, n, 0, k, x, y, z, gx, gy, gz, t)
                        overflow = overflow or not ok
                        e -= k
                    else:
                        # Moller (e-) / Bhabha (e+) delta ray, G4MollerBhabhaModel sampling
                        tmax = e if positron else 0.5 * e
                        if cut_d >= tmax:
                            continue
                        xmin = cut_d / e
                        xmax = tmax / e
                        gam = e / ME + 1.0
                        gamma2 = gam * gam
                        beta2 = 1.0 - 1.0 / gamma2
                        if not positron:
                            gg = (2.0 * gam - 1.0) / gamma2
                            yv = 1.0 - xmax
                            grej = 1.0 - gg * xmax + xmax * xmax * (1.0 - gg + (1.0 - gg * yv) / (yv * yv))
                            while True:
                                qq = np.random.random()
                                xd = xmin * xmax / (xmin * (1.0 - qq) + xmax * qq)
                                yv = 1.0 - xd
                                zv = 1.0 - gg * xd + xd * xd * (1.0 - gg + (1.0 - gg * yv) / (yv * yv))
                                if grej * np.random.random() <= zv:
                                    break
                        else:
                            yv = 1.0 / (1.0 + gam)
                            y2 = yv * yv
                            y12 = 1.0 - 2.0 * yv
                            b1 = 2.0 - y2
                            b2 = y12 * (3.0 + y2)
                            y122 = y12 * y12
                            b4 = y122 * y12
                            b3 = b4 + y122
                            yv = xmax * xmax
                            grej = 1.0 + (yv * yv * b4 - xmin * xmin * xmin * b3 + yv * b2 - xmin * b1) * beta2
                            while True:
                                qq = np.random.random()
                                xd = xmin * xmax / (xmin * (1.0 - qq) + xmax * qq)
                                yv = xd * xd
                                zv = 1.0 + (yv * yv * b4 - xd * yv * b3 + yv * b2 - xd * b1) * beta2
                                if grej * np.random.random() <= zv:
                                    break
                        td = xd * e
                        cosd = math.sqrt(td * (e + 2.0 * ME) / (e * (td + 2.0 * ME)))
                        phi = 2.0 * math.pi * np.random.random()
                        dx_, dy_, dz_ = _rotate(ux, uy, uz, min(cosd, 1.0), phi)
                        pd = math.sqrt(td * (td + 2.0 * ME))
                        p0 = math.sqrt(e * (e + 2.0 * ME))
                        px = p0 * ux - pd * dx_
                        py = p0 * uy - pd * dy_
                        pz = p0 * uz - pd * dz_
                        pn = math.sqrt(px * px + py * py + pz * pz)
                        n, ok = _push(st, stf, n, 1, td, x, y, z, dx_, dy_, dz_, t)
                        overflow = overflow or not ok
                        e -= td
                        if pn > 0.0:
                            ux, uy, uz = px / pn, py / pn, pz / pn
            if alive:
                mat = _material(geo_z, mat_map, has_fibres, fp, fs, x, y, z)
                if e > 0.0:
                    _deposit_local(
                        tables,
                        scalars,
                        mat,
                        e,
                        positron,
                        grid,
                        tgrid,
                        diag,
                        prof,
                        rad,
                        x,
                        y,
                        z,
                        t,
                        pitch,
                        half,
                        edges,
                        depth,
                        x0,
                        y0,
                        ax,
                        ay,
                    )
                if positron:
                    # annihilation at rest: two back-to-back 511 keV photons, isotropic
                    cost = 2.0 * np.random.random() - 1.0
                    phi = 2.0 * math.pi * np.random.random()
                    sint = math.sqrt(1.0 - cost * cost)
                    gx = sint * math.cos(phi)
                    gy = sint * math.sin(phi)
                    n, ok = _push(st, stf, n, 0, ME, x, y, z, gx, gy, cost, t)
                    overflow = overflow or not ok
                    n, ok = _push(st, stf, n, 0, ME, x, y, z, -gx, -gy, -cost, t)
                    overflow = overflow or not ok
    return overflow


@nb.njit(cache=True)
def _landau_sample(landau_q):
    """A standard Landau variate from its tabulated quantile function (truncated)."""
    f = np.random.random() * (landau_q.shape[0] - 1)
    i = int(f)
    if i >= landau_q.shape[0] - 1:
        return landau_q[landau_q.shape[0] - 1]
    w = f - i
    return landau_q[i] * (1.0 - w) + landau_q[i + 1] * w


@nb.njit(cache=True)
def _transport_heavy(
    st,
    stf,
    n,
    tables,
    scalars,
    heavy,
    geo_z,
    mat_map,
    has_fibres,
    fp,
    fs,
    depth,
    grid,
    tgrid,
    diag,
    prof,
    rad,
    pitch,
    half,
    edges,
    x0,
    y0,
    ax,
    ay,
    kin,
    mass,
    charged,
    lambda_scale,
    em_e0,
    x,
    y,
    z,
    ux,
    uy,
    uz,
    t,
    landau_q,
    landau_mean,
    had_vis,
    sf_nominal,
    lambda_eff,
    em_fraction_k,
):
    """A muon or hadron: straight track with Bethe ionisation (Landau fluctuations in active
    material) until a nuclear interaction (hadrons, lambda_scale > 0) or exit. At the
    interaction the energy is shared between pi0 photons (transported as EM showers) and a
    hadronic remainder deposited as spots along the Bock et al. profile (see
    :mod:`calopt.simulation.cascade.hadrons` for the model and its sources)."""
    eta = -math.log(1.0 - np.random.random()) if lambda_scale > 0.0 else FAR
    e = kin
    while True:
        if z < 0.0:
            diag[D_BACK] += e
            return n, False
        if z >= depth:
            diag[D_REAR] += e
            return n, False
        if e <= 1.0:
            mat = _material(geo_z, mat_map, has_fibres, fp, fs, x, y, z)
            _deposit_local(
                tables,
                scalars,
                mat,
                e,
                False,
                grid,
                tgrid,
                diag,
                prof,
                rad,
                x,
                y,
                z,
                t,
                pitch,
                half,
                edges,
                depth,
                x0,
                y0,
                ax,
                ay,
            )
            return n, False
        mat = _material(geo_z, mat_map, has_fibres, fp, fs, x, y, z)
        lam = scalars[mat, S_LAMBDA_I] * lambda_scale if lambda_scale > 0.0 else FAR
        s_int = eta * lam
        dgeo = _distance(geo_z, has_fibres, fp, fs, x, y, z, ux, uy, uz)
        s = min(s_int, dgeo, 10.0)
        interact = s == s_int
        gamma = (e + mass) / mass
        bg = math.sqrt(gamma * gamma - 1.0)
        beta = bg / gamma
        de = 0.0
        if charged:
            fbg = (math.log(bg) - BG_GRID_LOG_MIN) / LOG_BG_STEP
            ib = min(max(int(fbg), 0), heavy.shape[1] - 2)
            wb = min(max(fbg - ib, 0.0), 1.0)
            dedx = heavy[mat, ib] * (1.0 - wb) + heavy[mat, ib + 1] * wb
            mean = dedx * s
            de = mean
            if scalars[mat, S_ACTIVE] > 0.0 and s > 0.0:
                xi = scalars[mat, S_XI] * s / (beta * beta)
                de = mean + xi * (_landau_sample(landau_q) - landau_mean)
                if de < 0.0:
                    de = 0.0
            if de > e:
                de = e
            diag[D_DEPOSITED] += de
            if scalars[mat, S_ACTIVE] > 0.0 and de > 0.0:
                kb = scalars[mat, S_KB]
                vis = de / (1.0 + kb * dedx) if kb > 0.0 else de
                _score(
                    grid,
                    tgrid,
                    diag,
                    prof,
                    rad,
                    vis,
                    x + 0.5 * s * ux,
                    y + 0.5 * s * uy,
                    z + 0.5 * s * uz,
                    t + 0.5 * s / (beta * C_LIGHT),
                    pitch,
                    half,
                    edges,
                    depth,
                    x0,
                    y0,
                    ax,
                    ay,
                )
        step = s if interact else s + (EPS_PUSH if s == dgeo else 0.0)
        x += ux * step
        y += uy * step
        z += uz * step
        t += step / (beta * C_LIGHT)
        e -= de
        if lambda_scale > 0.0 and lam < FAR:
            eta -= s / lam
        if interact:
            break
    # ---- hadronic interaction
    if z >= depth or z < 0.0:
        return n, False
    diag[D_INTERACTION_DEPTH] = z
    egev = e / 1000.0
    fmean = 1.0 - (max(egev, 1e-3) / em_e0) ** (em_fraction_k - 1.0) if egev > em_e0 else 0.1
    fmean = min(max(fmean, 0.05), 0.95)
    conc = 6.0
    fem = np.random.beta(fmean * conc, (1.0 - fmean) * conc)
    e_em = fem * e
    e_had = e - e_em
    n_pi0 = 1 + np.random.poisson(max(0.5 * math.log(max(egev, 1.0)) + 0.5, 0.1))
    ng = 2 * n_pi0
    weights = np.empty(ng)
    tot = 0.0
    for i in range(ng):
        weights[i] = -math.log(1.0 - np.random.random())
        tot += weights[i]
    overflow = False
    for i in range(ng):
        eg = e_em * weights[i] / tot
        if eg <= 0.0:
            continue
        pt = -170.0 * math.log(1.0 - np.random.random())
        th = min(pt / eg, 0.5 * math.pi)
        gx, gy, gz = _rotate(ux, uy, uz, math.cos(th), 2.0 * math.pi * np.random.random())
        n, ok = _push(st, stf, n, 0, eg, x, y, z, gx, gy, gz, t)
        overflow = overflow or not ok
    # hadronic remainder: Bock et al. hadronic component along the axis, 2-D exponential laterally
    lg = math.log(max(egev, 0.1))
    a_b = max(0.6165 + 0.3183 * lg, 0.2)
    d_b = max(0.9099 - 0.0237 * lg, 0.2)
    n_spots = 40
    e_spot = e_had / n_spots
    diag[D_INVISIBLE_HADRONIC] += e_had * (1.0 - had_vis)
    for _ in range(n_spots):
        dl = np.random.gamma(a_b, lambda_eff / d_b)
        r = np.random.gamma(2.0, 0.2 * lambda_eff)
        phi = 2.0 * math.pi * np.random.random()
        px_, py_, pz_ = _rotate(ux, uy, uz, 0.0, phi)
        sx = x + ux * dl + px_ * r
        sy = y + uy * dl + py_ * r
        sz = z + uz * dl + pz_ * r
        if sz >= depth:
            diag[D_REAR] += e_spot * had_vis
            continue
        if sz < 0.0:
            diag[D_BACK] += e_spot * had_vis
            continue
        diag[D_DEPOSITED] += e_spot * had_vis
        _score(
            grid,
            tgrid,
            diag,
            prof,
            rad,
            e_spot * had_vis * sf_nominal,
            sx,
            sy,
            sz,
            t + dl / C_LIGHT,
            pitch,
            half,
            edges,
            depth,
            x0,
            y0,
            ax,
            ay,
        )
    return n, overflow


@nb.njit(cache=True, nogil=True)
def simulate_batch(
    seeds,
    ptypes,
    energies,
    dirs,
    points,
    masses,
    lambda_scales,
    em_e0s,
    tables,
    scalars,
    heavy,
    geo_z,
    mat_map,
    has_fibres,
    fp,
    fs,
    depth,
    cuts,
    pitch,
    grid_n,
    edges,
    landau_q,
    landau_mean,
    had_vis,
    lambda_eff,
    sf_nominal,
    n_prof,
    n_rad,
):
    """Simulate ``len(seeds)`` primaries.

    ptypes: 0 photon, 1 e-, 2 e+, 3 muon, 4 charged hadron, 5 neutral hadron.
    energies: kinetic energy [MeV] (photon energy for photons). dirs: (N, 3) unit vectors.
    points: (N, 2) entry points [mm] on the front face, relative to the window centre.
    Returns showers (N, S, H, W) visible MeV, times (N, S, H, W) ns, diag (N, N_DIAG),
    longitudinal profile (N, n_prof) and radial profile (N, n_rad, 1 mm bins).
    """
    nb_ = seeds.shape[0]
    ns = edges.shape[0] - 1
    showers = np.zeros((nb_, ns, grid_n, grid_n), dtype=np.float32)
    times = np.zeros((nb_, ns, grid_n, grid_n), dtype=np.float32)
    diags = np.zeros((nb_, N_DIAG))
    profs = np.zeros((nb_, n_prof), dtype=np.float32)
    rads = np.zeros((nb_, n_rad), dtype=np.float32)
    st = np.zeros(STACK_SIZE, dtype=np.int8)
    stf = np.zeros((STACK_SIZE, 8))
    half = 0.5 * grid_n * pitch
    grid = np.zeros((ns, grid_n, grid_n))
    tgrid = np.zeros((ns, grid_n, grid_n))
    diag = np.zeros(N_DIAG)
    prof = np.zeros(n_prof)
    rad = np.zeros(n_rad)
    n_overflow = 0
    for i in range(nb_):
        np.random.seed(seeds[i])
        grid[:] = 0.0
        tgrid[:] = 0.0
        diag[:] = 0.0
        diag[D_INTERACTION_DEPTH] = -1.0
        prof[:] = 0.0
        rad[:] = 0.0
        x = points[i, 0]
        y = points[i, 1]
        ux = dirs[i, 0]
        uy = dirs[i, 1]
        uz = dirs[i, 2]
        ax = ux / uz
        ay = uy / uz
        pt = ptypes[i]
        n = 0
        overflow = False
        if pt <= 2:
            n, _ = _push(st, stf, 0, pt, energies[i], x, y, 0.0, ux, uy, uz, 0.0)
        else:
            n, ov = _transport_heavy(
                st,
                stf,
                0,
                tables,
                scalars,
                heavy,
                geo_z,
                mat_map,
                has_fibres,
                fp,
                fs,
                depth,
                grid,
                tgrid,
                diag,
                prof,
                rad,
                pitch,
                half,
                edges,
                x,
                y,
                ax,
                ay,
                energies[i],
                masses[i],
                pt != 5,
                lambda_scales[i],
                em_e0s[i],
                x,
                y,
                0.0,
                ux,
                uy,
                uz,
                0.0,
                landau_q,
                landau_mean,
                had_vis,
                sf_nominal,
                lambda_eff,
                0.82,
            )
            overflow = ov
        ov2 = _run_stack(
            st,
            stf,
            n,
            tables,
            scalars,
            geo_z,
            mat_map,
            has_fibres,
            fp,
            fs,
            depth,
            cuts[0],
            cuts[1],
            cuts[2],
            grid,
            tgrid,
            diag,
            prof,
            rad,
            pitch,
            half,
            edges,
            x,
            y,
            ax,
            ay,
        )
        if overflow or ov2:
            n_overflow += 1
        for s in range(ns):
            for a in range(grid_n):
                for b in range(grid_n):
                    v = grid[s, a, b]
                    showers[i, s, a, b] = v
                    if v > 0.0:
                        times[i, s, a, b] = tgrid[s, a, b] / v
        diags[i, :] = diag
        profs[i, :] = prof
        rads[i, :] = rad
    return showers, times, diags, profs, rads, n_overflow
