"""The detector: module technologies (and, later, the ECAL wall, designs and cost)."""

from calopt.detector.technologies import MODULE_SIZE_MM, TECHNOLOGIES, Layer, Technology, get_technology

__all__ = ["MODULE_SIZE_MM", "TECHNOLOGIES", "Layer", "Technology", "get_technology"]
