from core.models.last import (LAST, LASTConfig, create_model, list_variants, register_variant,  # noqa: F401
                              variant_config)
