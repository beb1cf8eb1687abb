"""Stage 4 of the cycle: clusters, photons, pi0 and B candidates."""

from calopt.reconstruction.clusters import Clusters, ClusterSettings, cluster_cells

__all__ = ["ClusterSettings", "Clusters", "cluster_cells"]
