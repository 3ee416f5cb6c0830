from setuptools import find_packages, setup

setup(
    name='efficientvit_det',
    version='0.1.0',
    description='Memory-efficient vision transformers (SHViT, EfficientViT-M, UniForm) '
                'as detection and segmentation backbones for mmdet 3.x / mmseg 1.x',
    packages=find_packages(include=['efficientvit_det', 'efficientvit_det.*']),
    python_requires='>=3.9',
    # The backbones need only torch; the OpenMMLab stack is what the toolkit is for.
    # mmcv (compiled ops) is installed by tools/install.sh, not by pip.
    install_requires=[
        'torch',
        'mmengine',
        'mmdet',
        'mmsegmentation',
        'timm>=1.0.16',
        'pycocotools',
        'ftfy',
        'regex',
        'opencv-python-headless',
        'matplotlib',
    ],
    extras_require={
        'dev': ['pytest', 'onnx', 'onnxruntime', 'onnxscript'],
    },
)
