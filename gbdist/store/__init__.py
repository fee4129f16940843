"""The store: the one contract between stages.

``schema`` owns every array and group name, completion flags, the chunk plan, the LAE
results per eps and the store's chosen eps; ``lock`` the one-writer lock beside a local
store; ``representations`` the per-GB representations read back (ASR, ASR_area, LER);
``dataset`` the store as a lazy ``xarray.Dataset`` (``gbdist.open_store``).
"""
