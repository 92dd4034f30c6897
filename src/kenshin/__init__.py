"""Kenshin (検診): the municipal health-promotion screening system."""
