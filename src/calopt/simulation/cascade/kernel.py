"""The compiled transport of the cascade Monte Carlo (numba).

One call of :func:`simulate_batch` transports a batch of primaries, each from its own seed,
through a module and scores visible energy and energy-weighted time on the fine grid.

Geometry: a module of ``depth`` along z (z = 0 at the front face), laterally infinite (the
neighbouring modules are of the same technology). Along z a period of ``geo_z`` boundaries is
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
  Highland width and a lateral displacement correlated with the deflection; steps limited by
  boundaries, X0/2, and a Highland angle of 0.3 rad (but not below 10 % of the range); below
  the tracking cut the rest is deposited locally and positrons annihilate at rest into two
  511 keV photons. In-flight annihilation, fluorescence and Rayleigh scattering are neglected.
* visible energy: energy deposited in active materials, with Birks' law
  dL = dE / (1 + kB dE/dx).

Contexts passed around (numba tuples):

* ``geo = (geo_z, mat_map, fib)`` with ``fib = [has_fibres, fibre pitch, fibre side, depth]``;
* ``sc = (grid, tgrid, diag, prof, rad, edges, sp)``: the scoring arrays of the current shower
  and ``sp = [pitch, half window, depth, x0, y0, ax, ay]`` (entry point and slopes of the
  incident axis, for the radial profile).
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

ME = 0.51099895  # MeV, electron mass (PDG)
C_LIGHT = 299.792458  # mm/ns
R_E = 2.8179403262e-12  # mm, classical electron radius (PDG)
EPS_PUSH = 1e-7  # mm, moves a particle across the boundary it stopped on
FAR = 1.0e30
LATERAL_LIMIT = 3000.0  # mm: particles further than this from the axis are dropped
STACK_SIZE = 200_000
N_DIAG = 8


class DIAG:
    """Columns of the per-shower diagnostics array (MeV unless stated)."""

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

# ----------------------------------------------------------------------------- utilities


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
def _unit(px, py, pz, fx, fy, fz):
    """(px, py, pz) normalised, or the fallback direction f if it vanishes."""
    pn = math.sqrt(px * px + py * py + pz * pz)
    if pn > 0.0:
        return px / pn, py / pn, pz / pn
    return fx, fy, fz


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
def _push(st, stf, n, ptype, e, x, y, z, ux, uy, uz, t):
    """Put a particle on the stack; returns (new size, False if the stack was full)."""
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


# ----------------------------------------------------------------------------- geometry


@nb.njit(cache=True, inline="always")
def _layer(zb, z):
    pz = zb[zb.shape[0] - 1]
    zz = z - math.floor(z / pz) * pz
    k = 0
    while k < zb.shape[0] - 2 and zz >= zb[k + 1]:
        k += 1
    return k, zz


@nb.njit(cache=True)
def _material(geo, x, y, z):
    geo_z, mat_map, fib = geo
    k, _ = _layer(geo_z, z)
    if fib[0] > 0.0:
        fp = fib[1]
        fs = fib[2]
        u = x - math.floor(x / fp) * fp
        v = y - math.floor(y / fp) * fp
        if u < fs and v < fs:
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
def _distance(geo, x, y, z, ux, uy, uz):
    """Distance to the next material boundary along the direction."""
    geo_z, _, fib = geo
    k, zz = _layer(geo_z, z)
    if uz > 0.0:
        d = (geo_z[k + 1] - zz) / uz
    elif uz < 0.0:
        d = (zz - geo_z[k]) / (-uz)
    else:
        d = FAR
    if fib[0] > 0.0:
        d = min(d, _axis_distance(x, ux, fib[1], fib[2]), _axis_distance(y, uy, fib[1], fib[2]))
    return d


@nb.njit(cache=True)
def _escaped(sc, e, x, y, z, depth):
    """Book the energy of a particle that left the module; True if it did."""
    diag = sc[2]
    if z < 0.0:
        diag[D_BACK] += e
        return True
    if z >= depth:
        diag[D_REAR] += e
        return True
    if abs(x) > LATERAL_LIMIT or abs(y) > LATERAL_LIMIT:
        diag[D_LATERAL] += e
        return True
    return False


# ----------------------------------------------------------------------------- scoring


@nb.njit(cache=True)
def _score(sc, e_vis, x, y, z, t):
    """Add visible energy at (x, y, z) and time t to the grid and the diagnostics."""
    grid, tgrid, diag, prof, rad, edges, sp = sc
    pitch, half, depth, x0, y0, ax, ay = sp[0], sp[1], sp[2], sp[3], sp[4], sp[5], sp[6]
    diag[D_VISIBLE_ALL] += e_vis
    nz = prof.shape[0]
    iz = int(z / depth * nz)
    if 0 <= iz < nz:
        prof[iz] += e_vis
    rx = x - (x0 + ax * z)  # distance from the incident axis
    ry = y - (y0 + ay * z)
    ir = int(math.sqrt(rx * rx + ry * ry))  # 1 mm bins
    if ir < rad.shape[0]:
        rad[ir] += e_vis
    ix = math.floor((x + half) / pitch)
    iy = math.floor((y + half) / pitch)
    if ix < 0 or iy < 0 or ix >= grid.shape[2] or iy >= grid.shape[1]:
        return
    ns = edges.shape[0] - 1
    s = 0
    while s < ns - 1 and z >= edges[s + 1]:
        s += 1
    grid[s, iy, ix] += e_vis
    tgrid[s, iy, ix] += e_vis * t
    diag[D_VISIBLE_WINDOW] += e_vis


@nb.njit(cache=True)
def _deposit_local(tables, scalars, mat, e, positron_like, sc, x, y, z, t):
    """Deposit the energy e of a stopped electron (or an absorbed photon) at a point."""
    sc[2][D_DEPOSITED] += e
    if scalars[mat, S_ACTIVE] > 0.0:
        kb = scalars[mat, S_KB]
        vis = e
        if kb > 0.0 and e > 0.0:
            q = Q_DEDX_EP if positron_like else Q_DEDX_EM
            dedx = _interp(tables, mat, q, math.log(max(e, 1e-3)))
            vis = e / (1.0 + kb * dedx)
        _score(sc, vis, x, y, z, t)


# ----------------------------------------------------------------------------- samplers


@nb.njit(cache=True)
def _compton_eps(e):
    """Scattered/incident photon energy ratio and 1 - cos(theta), G4KleinNishinaCompton
    sampling (physics-reference §3.5)."""
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
            return eps, onecost


@nb.njit(cache=True)
def _pair_fraction(e):
    """Energy fraction of the electron of a pair: uniform below 2 MeV, else Bethe-Heitler
    high-energy form 1 - 4/3 x (1 - x) by rejection (physics-reference §3.4)."""
    if e < 2.0:
        xx = ME / e + (0.5 - ME / e) * np.random.random()
        if np.random.random() < 0.5:
            xx = 1.0 - xx
        return xx
    lo = ME / e
    while True:
        xx = lo + (1.0 - 2.0 * lo) * np.random.random()
        if np.random.random() <= 1.0 - 4.0 / 3.0 * xx * (1.0 - xx):
            return xx


@nb.njit(cache=True)
def _brems_y(yc, ymax):
    """k/E of a bremsstrahlung photon in [yc, ymax]: 1/y, accepted with 1 - y + 0.75 y^2 (Tsai)."""
    while True:
        yy = yc * math.exp(np.random.random() * math.log(ymax / yc))
        if np.random.random() <= 1.0 - yy + 0.75 * yy * yy:
            return yy


@nb.njit(cache=True)
def _moller_x(e, xmin, xmax):
    """Delta-ray energy fraction of a Moller scattering (G4MollerBhabhaModel)."""
    gam = e / ME + 1.0
    gamma2 = gam * gam
    gg = (2.0 * gam - 1.0) / gamma2
    yv = 1.0 - xmax
    grej = 1.0 - gg * xmax + xmax * xmax * (1.0 - gg + (1.0 - gg * yv) / (yv * yv))
    while True:
        qq = np.random.random()
        xd = xmin * xmax / (xmin * (1.0 - qq) + xmax * qq)
        yv = 1.0 - xd
        zv = 1.0 - gg * xd + xd * xd * (1.0 - gg + (1.0 - gg * yv) / (yv * yv))
        if grej * np.random.random() <= zv:
            return xd


@nb.njit(cache=True)
def _bhabha_x(e, xmin, xmax):
    """Delta-ray energy fraction of a Bhabha scattering (G4MollerBhabhaModel)."""
    gam = e / ME + 1.0
    beta2 = 1.0 - 1.0 / (gam * gam)
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
            return xd


@nb.njit(cache=True)
def _msc_one_minus_cos(emid, s, x0m):
    """1 - cos(theta) of the multiple-scattering deflection over a step: exponential with mean
    theta0^2 (Highland width at the mid-step energy), truncated to [0, 2] -- a 2-D Gaussian of
    width theta0 at small angles, isotropic in the limit of large theta0."""
    pb = emid * (emid + 2.0 * ME) / (emid + ME)
    xr = s / x0m
    th0 = 13.6 / pb * math.sqrt(xr) * max(1.0 + 0.038 * math.log(xr), 0.1)
    a = th0 * th0
    if a <= 1e-12:
        return -1.0
    if a < 0.05:
        return min(-a * math.log(1.0 - np.random.random()), 2.0)
    return -a * math.log(1.0 - np.random.random() * (1.0 - math.exp(-2.0 / a)))


# ----------------------------------------------------------------------------- transport


@nb.njit(cache=True)
def _transport_photon(st, stf, n, tables, scalars, geo, cuts, sc, e, x, y, z, ux, uy, uz, t):
    """Follow a photon until it is absorbed, converts, or leaves; returns (n, overflow)."""
    depth = geo[2][3]
    cut_g, cut_e = cuts[0], cuts[2]
    overflow = False
    while True:
        if _escaped(sc, e, x, y, z, depth):
            return n, overflow
        mat = _material(geo, x, y, z)
        if e <= cut_g:
            _deposit_local(tables, scalars, mat, e, False, sc, x, y, z, t)
            return n, overflow
        loge = math.log(e)
        mu = _interp(tables, mat, Q_MU_TOT, loge)
        s = -math.log(1.0 - np.random.random()) / mu
        dgeo = _distance(geo, x, y, z, ux, uy, uz)
        crossing = s > dgeo
        if crossing:
            s = dgeo + EPS_PUSH
        x += ux * s
        y += uy * s
        z += uz * s
        t += s / C_LIGHT
        if crossing:
            continue
        r = np.random.random() * mu
        mu_pe = _interp(tables, mat, Q_MU_PE, loge)
        mu_c = _interp(tables, mat, Q_MU_COMPT, loge)
        if r < mu_pe:
            _deposit_local(tables, scalars, mat, e, False, sc, x, y, z, t)
            return n, overflow
        if r < mu_pe + mu_c:
            eps, onecost = _compton_eps(e)
            phi = 2.0 * math.pi * np.random.random()
            k1 = e * eps
            te = e - k1
            nx, ny, nz = _rotate(ux, uy, uz, 1.0 - onecost, phi)
            # electron direction from momentum conservation
            px = e * ux - k1 * nx
            py = e * uy - k1 * ny
            pz = e * uz - k1 * nz
            pn = math.sqrt(px * px + py * py + pz * pz)
            if te > cut_e and pn > 0.0:
                n, ok = _push(st, stf, n, 1, te, x, y, z, px / pn, py / pn, pz / pn, t)
                overflow = overflow or not ok
            else:
                _deposit_local(tables, scalars, mat, te, False, sc, x, y, z, t)
            e = k1
            ux, uy, uz = nx, ny, nz
            continue
        # pair production
        xx = _pair_fraction(e)
        em = xx * e
        ep = e - em
        phi = 2.0 * math.pi * np.random.random()
        th = _lepton_angle(em)
        dx1, dy1, dz1 = _rotate(ux, uy, uz, math.cos(th), phi)
        th = _lepton_angle(ep)
        dx2, dy2, dz2 = _rotate(ux, uy, uz, math.cos(th), phi + math.pi)
        n, ok1 = _push(st, stf, n, 1, max(em - ME, 0.0), x, y, z, dx1, dy1, dz1, t)
        n, ok2 = _push(st, stf, n, 2, max(ep - ME, 0.0), x, y, z, dx2, dy2, dz2, t)
        return n, overflow or not (ok1 and ok2)


@nb.njit(cache=True)
def _transport_lepton(st, stf, n, tables, scalars, geo, cuts, sc, positron, e, x, y, z, ux, uy, uz, t):
    """Follow an e- or e+ (condensed history) until it stops or leaves; returns (n, overflow)."""
    depth = geo[2][3]
    cut_g, cut_d, cut_e = cuts[0], cuts[1], cuts[2]
    diag = sc[2]
    q_range = Q_RANGE_EP if positron else Q_RANGE_EM
    q_delta = Q_LINV_BHABHA if positron else Q_LINV_MOLLER
    rest = 2.0 * ME if positron else 0.0
    overflow = False
    while True:
        if _escaped(sc, e + rest, x, y, z, depth):
            return n, overflow
        mat = _material(geo, x, y, z)
        if e <= cut_e:
            break
        loge = math.log(e)
        linv_b = _interp(tables, mat, Q_LINV_BREM, loge)
        linv = linv_b + _interp(tables, mat, q_delta, loge)
        s_int = -math.log(1.0 - np.random.random()) / linv if linv > 0.0 else FAR
        rng = _interp(tables, mat, q_range, loge)
        p = math.sqrt(e * (e + 2.0 * ME))
        beta = p / (e + ME)
        x0m = scalars[mat, S_X0]
        # step limit: Highland angle <= 0.3 rad, but not below 10 % of the range; at most X0/2
        s_msc = x0m * (0.3 * p * beta / 13.6) ** 2
        s_lim = min(max(s_msc, 0.1 * rng), 0.5 * x0m)
        dgeo = _distance(geo, x, y, z, ux, uy, uz)
        s = min(s_int, s_lim, dgeo, rng)
        boundary = s == dgeo
        discrete = (s == s_int) and not boundary
        # continuous energy loss through the range table, with Bohr fluctuations
        if s >= rng:
            de = e
        else:
            de = e - _inverse_range(tables, mat, q_range, rng - s)
            tc = min(cut_d, e if positron else 0.5 * e)
            var = 2.0 * math.pi * R_E**2 * ME * scalars[mat, S_NEL] * s * tc * (1.0 - 0.5 * beta * beta) / (beta * beta)
            if var > 0.0:
                de += math.sqrt(var) * np.random.normal()
            de = min(max(de, 0.0), e)
        emid = e - 0.5 * de
        bmid = math.sqrt(max(emid * (emid + 2.0 * ME), 1e-12)) / (emid + ME)
        if de > 0.0:
            diag[D_DEPOSITED] += de
            if scalars[mat, S_ACTIVE] > 0.0:
                kb = scalars[mat, S_KB]
                vis = de / (1.0 + kb * de / s) if (kb > 0.0 and s > 0.0) else de
                h = 0.5 * s
                _score(sc, vis, x + ux * h, y + uy * h, z + uz * h, t + h / (bmid * C_LIGHT))
        nx, ny, nz = ux, uy, uz
        if s > 0.0:
            omc = _msc_one_minus_cos(emid, s, x0m)
            if omc >= 0.0:
                nx, ny, nz = _rotate(ux, uy, uz, 1.0 - omc, 2.0 * math.pi * np.random.random())
        if boundary:
            # along the old direction, so that the boundary is crossed
            sp = s + EPS_PUSH
            x += ux * sp
            y += uy * sp
            z += uz * sp
        else:
            # along the mean of the old and new directions: a lateral displacement of
            # ~ s theta / 2, correlated with the deflection (PDG: correlation sqrt(3)/2)
            sp = s
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
        if not discrete:
            continue
        etot = e + ME
        if np.random.random() * linv < linv_b:
            yc = cut_g / etot
            ymax = e / etot
            if ymax <= yc:
                continue
            k = _brems_y(yc, ymax) * etot
            th = _lepton_angle(etot)
            gx, gy, gz = _rotate(ux, uy, uz, math.cos(th), 2.0 * math.pi * np.random.random())
            n, ok = _push(st, stf, n, 0, k, x, y, z, gx, gy, gz, t)
            overflow = overflow or not ok
            e -= k
        else:
            tmax = e if positron else 0.5 * e
            if cut_d >= tmax:
                continue
            xd = _bhabha_x(e, cut_d / e, tmax / e) if positron else _moller_x(e, cut_d / e, tmax / e)
            td = xd * e
            cosd = math.sqrt(td * (e + 2.0 * ME) / (e * (td + 2.0 * ME)))
            phi = 2.0 * math.pi * np.random.random()
            dx_, dy_, dz_ = _rotate(ux, uy, uz, min(cosd, 1.0), phi)
            pd = math.sqrt(td * (td + 2.0 * ME))
            p0 = math.sqrt(e * (e + 2.0 * ME))
            n, ok = _push(st, stf, n, 1, td, x, y, z, dx_, dy_, dz_, t)
            overflow = overflow or not ok
            e -= td
            ux, uy, uz = _unit(p0 * ux - pd * dx_, p0 * uy - pd * dy_, p0 * uz - pd * dz_, ux, uy, uz)
    # stopped inside the module: the rest is deposited here; positrons annihilate at rest
    mat = _material(geo, x, y, z)
    if e > 0.0:
        _deposit_local(tables, scalars, mat, e, positron, sc, x, y, z, t)
    if positron:
        cost = 2.0 * np.random.random() - 1.0
        phi = 2.0 * math.pi * np.random.random()
        sint = math.sqrt(1.0 - cost * cost)
        gx = sint * math.cos(phi)
        gy = sint * math.sin(phi)
        n, ok1 = _push(st, stf, n, 0, ME, x, y, z, gx, gy, cost, t)
        n, ok2 = _push(st, stf, n, 0, ME, x, y, z, -gx, -gy, -cost, t)
        overflow = overflow or not (ok1 and ok2)
    return n, overflow


@nb.njit(cache=True)
def _run_stack(st, stf, n, tables, scalars, geo, cuts, sc):
    """Transport every particle on the stack (depth first) until it is empty; True on overflow."""
    overflow = False
    while n > 0:
        n -= 1
        ptype = st[n]
        e, x, y, z = stf[n, 0], stf[n, 1], stf[n, 2], stf[n, 3]
        ux, uy, uz, t = stf[n, 4], stf[n, 5], stf[n, 6], stf[n, 7]
        if ptype == 0:
            n, ov = _transport_photon(st, stf, n, tables, scalars, geo, cuts, sc, e, x, y, z, ux, uy, uz, t)
        else:
            n, ov = _transport_lepton(st, stf, n, tables, scalars, geo, cuts, sc, ptype == 2, e, x, y, z, ux, uy, uz, t)
        overflow = overflow or ov
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
def _transport_heavy(st, stf, tables, scalars, heavy, geo, sc, kin, mass, charged, lambda_scale, em_e0,
                     x, y, z, ux, uy, uz, landau, hadpar):  # fmt: skip
    """A muon or hadron: straight track with Bethe ionisation (Landau fluctuations in active
    material) until a nuclear interaction (hadrons, lambda_scale > 0) or exit. At the
    interaction the energy is shared between pi0 photons (put on the EM stack) and a hadronic
    remainder deposited as spots (model and sources in
    :mod:`calopt.simulation.cascade.simulator`). Returns (stack size, overflow)."""
    landau_q, landau_mean = landau
    had_vis, sf_nominal, lambda_eff, em_fraction_k = hadpar[0], hadpar[1], hadpar[2], hadpar[3]
    depth = geo[2][3]
    diag = sc[2]
    t = 0.0
    eta = -math.log(1.0 - np.random.random()) if lambda_scale > 0.0 else FAR
    e = kin
    while True:
        if _escaped(sc, e, x, y, z, depth):
            return 0, False
        mat = _material(geo, x, y, z)
        if e <= 1.0:
            _deposit_local(tables, scalars, mat, e, False, sc, x, y, z, t)
            return 0, False
        lam = scalars[mat, S_LAMBDA_I] * lambda_scale if lambda_scale > 0.0 else FAR
        s_int = eta * lam
        dgeo = _distance(geo, x, y, z, ux, uy, uz)
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
            de = dedx * s
            if scalars[mat, S_ACTIVE] > 0.0 and s > 0.0:
                xi = scalars[mat, S_XI] * s / (beta * beta)
                de = max(de + xi * (_landau_sample(landau_q) - landau_mean), 0.0)
            de = min(de, e)
            diag[D_DEPOSITED] += de
            if scalars[mat, S_ACTIVE] > 0.0 and de > 0.0:
                kb = scalars[mat, S_KB]
                vis = de / (1.0 + kb * dedx) if kb > 0.0 else de
                h = 0.5 * s
                _score(sc, vis, x + h * ux, y + h * uy, z + h * uz, t + h / (beta * C_LIGHT))
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
        return 0, False
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
    n = 0
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
    e_spot = e_had / n_spots * had_vis
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
            diag[D_REAR] += e_spot
        elif sz < 0.0:
            diag[D_BACK] += e_spot
        else:
            diag[D_DEPOSITED] += e_spot
            _score(sc, e_spot * sf_nominal, sx, sy, sz, t + dl / C_LIGHT)
    return n, overflow


@nb.njit(cache=True, nogil=True)
def simulate_batch(seeds, ptypes, energies, dirs, points, masses, lambda_scales, em_e0s,
                   tables, scalars, heavy, geo, cuts, pitch, grid_n, edges, landau, hadpar,
                   n_prof, n_rad):  # fmt: skip
    """Simulate ``len(seeds)`` primaries.

    ptypes: 0 photon, 1 e-, 2 e+, 3 muon, 4 charged hadron, 5 neutral hadron.
    energies: kinetic energy [MeV] (photon energy for photons). dirs: (N, 3) unit vectors.
    points: (N, 2) entry points [mm] on the front face, relative to the window centre.
    geo: (geo_z, mat_map, [has_fibres, fibre pitch, fibre side, depth]); cuts: [photon, delta,
    electron] MeV; landau: (quantile table, its mean); hadpar: [h/e, nominal EM sampling
    fraction, effective lambda_I [mm], Groom exponent k].
    Returns showers (N, S, H, W) visible MeV, times (N, S, H, W) ns, diag (N, N_DIAG),
    longitudinal profile (N, n_prof), radial profile (N, n_rad, 1 mm bins) and the number of
    showers whose particle stack overflowed.
    """
    nb_ = seeds.shape[0]
    ns = edges.shape[0] - 1
    depth = geo[2][3]
    showers = np.zeros((nb_, ns, grid_n, grid_n), dtype=np.float32)
    times = np.zeros((nb_, ns, grid_n, grid_n), dtype=np.float32)
    diags = np.zeros((nb_, N_DIAG))
    profs = np.zeros((nb_, n_prof), dtype=np.float32)
    rads = np.zeros((nb_, n_rad), dtype=np.float32)
    st = np.zeros(STACK_SIZE, dtype=np.int8)
    stf = np.zeros((STACK_SIZE, 8))
    grid = np.zeros((ns, grid_n, grid_n))
    tgrid = np.zeros((ns, grid_n, grid_n))
    diag = np.zeros(N_DIAG)
    prof = np.zeros(n_prof)
    rad = np.zeros(n_rad)
    sp = np.array([pitch, 0.5 * grid_n * pitch, depth, 0.0, 0.0, 0.0, 0.0])
    sc = (grid, tgrid, diag, prof, rad, edges, sp)
    n_overflow = 0
    for i in range(nb_):
        np.random.seed(seeds[i])
        grid[:] = 0.0
        tgrid[:] = 0.0
        diag[:] = 0.0
        diag[D_INTERACTION_DEPTH] = -1.0
        prof[:] = 0.0
        rad[:] = 0.0
        x, y = points[i, 0], points[i, 1]
        ux, uy, uz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        sp[3], sp[4], sp[5], sp[6] = x, y, ux / uz, uy / uz
        pt = ptypes[i]
        overflow = False
        if pt <= 2:
            n, _ = _push(st, stf, 0, pt, energies[i], x, y, 0.0, ux, uy, uz, 0.0)
        else:
            n, overflow = _transport_heavy(st, stf, tables, scalars, heavy, geo, sc, energies[i], masses[i], pt != 5,
                                           lambda_scales[i], em_e0s[i], x, y, 0.0, ux, uy, uz, landau,
                                           hadpar)  # fmt: skip
        if _run_stack(st, stf, n, tables, scalars, geo, cuts, sc) or overflow:
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
