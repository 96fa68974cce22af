"""Where uploads and renditions live: the local MEDIA_ROOT (the embedded default) or an S3 bucket.

A plain package, not a Django app: config/settings.py reads KILN_MEDIA_STORAGE through `location`, and the apps
that store files (thumbnails) or remove them (purge) go through `store`, which speaks to both kinds alike and
turns an object store's refusals into errors a person can read.
"""
