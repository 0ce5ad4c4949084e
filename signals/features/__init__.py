"""Point-in-time features: five pure calculators (technical, fundamental, cross_asset,
alternative, temporal), a registry naming every feature, and the cached :class:`FeatureStore`.

Training and serving use ``FeatureStore.from_settings(settings).get_features(symbols, start,
end, provider)``; the model signature and the docs use :data:`FEATURES` / :func:`feature_names`;
:data:`FEATURE_VERSION` identifies the feature code and is logged with every model.
"""

from signals.features.errors import FeatureError
from signals.features.spec import CATEGORIES, FEATURE_VERSION, FEATURES, FeatureSpec, feature_names
from signals.features.store import FeatureStore

__all__ = ["CATEGORIES", "FEATURE_VERSION", "FEATURES", "FeatureError", "FeatureSpec", "FeatureStore", "feature_names"]
