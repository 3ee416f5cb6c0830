from setuptools import find_packages, setup

setup(
    name='efficientvit_det',
    version='0.1.0',
    description='Memory-efficient vision transformers (SHViT, EfficientViT-M, UniForm) '
                'as detection and segmentation backbones for mmdet 3.x / mmseg 1.x',
    packages=find_packages(include=['efficientvit_det', 'efficientvit_det.*']),
    license='MIT',
    python_requires='>=3.9',
    # The backbones need only torch; the OpenMMLab stack is what the toolkit is for.
    # mmcv 2.1.0 (compiled ops) is installed by tools/install.sh, not by pip. The
    # OpenMMLab versions are exact: a few private names of theirs are used (README,
    # "For developers"; tests/test_install.py checks they are still there).
    install_requires=[
        'torch',
        'mmengine==0.10.7',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        'timm>=1.0.16',
        'pycocotools',
        'ftfy',
        'regex',
        'opencv-python-headless',
        'matplotlib',
    ],
    extras_require={
        'dev': ['pytest', 'pytest-xdist', 'onnx', 'onnxruntime', 'onnxscript'],
    },
)
